"""The hand-written SQL floor: the same schema changes, legacy shape to head, with the plain
``sqlite3`` / ``psql`` / ``mariadb`` client and nothing else (no Python, no reflection, no
version checks).

It is what a careful person would type: one transaction, the cheapest statement for each
change (the SQLite CHECK widened in place, as revision 0007 now does; the tokens table copied
once with its new UUID computed in the copy).
"""

from __future__ import annotations

from llm_proxy_db.migration.revision_helpers import SQLITE_UUID4_SQL

_SQLITE_COLUMNS = (
    "token, project_id, expires_at, is_active, deactivated_at, request_count, max_requests, "
    "created_at, last_used_at, cache_hit_count"
)
SQLITE_NEW_TOKENS = """
CREATE TABLE tokens_new (
  id TEXT PRIMARY KEY,
  token TEXT NOT NULL UNIQUE,
  project_id TEXT NOT NULL,
  expires_at DATETIME,
  is_active BOOLEAN NOT NULL DEFAULT 1,
  deactivated_at DATETIME,
  request_count INTEGER NOT NULL DEFAULT 0,
  max_requests INTEGER,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  last_used_at DATETIME,
  cache_hit_count INTEGER NOT NULL DEFAULT 0,
  FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE
);
"""
SQLITE_AUDIT_LOG = """
CREATE TABLE audit_events (id TEXT PRIMARY KEY, timestamp DATETIME NOT NULL,
  action TEXT NOT NULL, actor TEXT NOT NULL, project_id TEXT, request_id TEXT,
  correlation_id TEXT, client_ip TEXT, method TEXT, path TEXT, user_agent TEXT,
  outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied', 'error')),
  reason TEXT, token_id TEXT, metadata TEXT);
CREATE INDEX idx_audit_timestamp ON audit_events(timestamp);
CREATE INDEX idx_audit_action ON audit_events(action);
CREATE INDEX idx_audit_project_id ON audit_events(project_id);
CREATE INDEX idx_audit_client_ip ON audit_events(client_ip);
CREATE INDEX idx_audit_request_id ON audit_events(request_id);
CREATE INDEX idx_audit_outcome ON audit_events(outcome);
CREATE INDEX idx_audit_ip_action ON audit_events(client_ip, action);
"""


def sqlite_script(*, audit_log: bool, schema_version: int) -> str:
    """L1 (``audit_log``) or L0 to head; ``schema_version`` is the file's current one."""
    widen = (
        "PRAGMA writable_schema = ON;\n"
        "UPDATE sqlite_master SET sql = replace(sql, '''failure'')', "
        "'''failure'', ''denied'', ''error'')') WHERE type = 'table' AND name = 'audit_events';\n"
        f"PRAGMA schema_version = {schema_version + 1};\nPRAGMA writable_schema = OFF;\n"
        if audit_log
        else SQLITE_AUDIT_LOG
    )
    return f"""PRAGMA foreign_keys = OFF;
BEGIN;
{widen}
ALTER TABLE projects ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT 1;
ALTER TABLE projects ADD COLUMN deactivated_at DATETIME;
ALTER TABLE tokens ADD COLUMN deactivated_at DATETIME;
ALTER TABLE tokens ADD COLUMN cache_hit_count INTEGER NOT NULL DEFAULT 0;
{SQLITE_NEW_TOKENS}
INSERT INTO tokens_new (id, {_SQLITE_COLUMNS})
  SELECT {SQLITE_UUID4_SQL}, {_SQLITE_COLUMNS} FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX idx_tokens_token ON tokens(token);
CREATE INDEX idx_tokens_project_id ON tokens(project_id);
CREATE INDEX idx_tokens_expires_at ON tokens(expires_at);
CREATE INDEX idx_tokens_is_active ON tokens(is_active);
ALTER TABLE projects RENAME COLUMN openai_api_key TO api_key;
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('0007');
PRAGMA foreign_key_check;
COMMIT;
"""


POSTGRES_SCRIPT = """
\\set ON_ERROR_STOP 1
BEGIN;
SET LOCAL lock_timeout = '5s';
ALTER TABLE projects ADD COLUMN IF NOT EXISTS deactivated_at TIMESTAMP;
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS deactivated_at TIMESTAMP;
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS cache_hit_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN id UUID DEFAULT gen_random_uuid();
ALTER TABLE tokens ALTER COLUMN id SET NOT NULL;
ALTER TABLE tokens DROP CONSTRAINT tokens_pkey;
ALTER TABLE tokens ADD CONSTRAINT tokens_pkey PRIMARY KEY (id);
ALTER TABLE tokens ADD CONSTRAINT tokens_token_unique UNIQUE (token);
CREATE INDEX idx_tokens_token ON tokens(token);
ALTER TABLE projects RENAME COLUMN openai_api_key TO api_key;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_outcome_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_outcome_check
  CHECK (outcome IN ('success', 'failure', 'denied', 'error')) NOT VALID;
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('0007');
COMMIT;
ALTER TABLE audit_events VALIDATE CONSTRAINT audit_events_outcome_check;
"""

# The same online steps as revision 0005 (and the rest as above), typed by hand for psql:
# what a careful person would run to migrate without stopping the service.  Each statement
# commits on its own; the backfill is a DO block walking the pages 10 at a time (about the
# rows 0005's 40 ms batches fill on this kind of machine), committing after each range.
POSTGRES_ONLINE_SCRIPT = """
\\set ON_ERROR_STOP 1
SET lock_timeout = '1s';
SET synchronous_commit = off;
ALTER TABLE projects ADD COLUMN IF NOT EXISTS deactivated_at TIMESTAMP;
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS deactivated_at TIMESTAMP;
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS cache_hit_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN id UUID, ALTER COLUMN id SET DEFAULT gen_random_uuid();
DO $$
DECLARE pages bigint := pg_relation_size('tokens') / current_setting('block_size')::int;
BEGIN
  FOR p IN 0..pages BY 10 LOOP
    EXECUTE format('UPDATE tokens SET id = gen_random_uuid() WHERE ctid >= ''(%s,0)''::tid '
                   'AND ctid < ''(%s,0)''::tid AND id IS NULL', p, p + 10);
    COMMIT;
  END LOOP;
END $$;
ALTER TABLE tokens ADD CONSTRAINT tokens_id_not_null CHECK (id IS NOT NULL) NOT VALID;
ALTER TABLE tokens VALIDATE CONSTRAINT tokens_id_not_null;
ALTER TABLE tokens ALTER COLUMN id SET NOT NULL;
ALTER TABLE tokens DROP CONSTRAINT tokens_id_not_null;
SET maintenance_work_mem = '256MB';
CREATE UNIQUE INDEX CONCURRENTLY tokens_id_key_new ON tokens (id);
CREATE UNIQUE INDEX CONCURRENTLY tokens_token_unique_new ON tokens (token);
CREATE INDEX CONCURRENTLY idx_tokens_token ON tokens (token);
ALTER TABLE tokens DROP CONSTRAINT tokens_pkey,
  ADD CONSTRAINT tokens_pkey PRIMARY KEY USING INDEX tokens_id_key_new,
  ADD CONSTRAINT tokens_token_unique UNIQUE USING INDEX tokens_token_unique_new;
BEGIN;
ALTER TABLE projects RENAME COLUMN openai_api_key TO api_key;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_outcome_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_outcome_check
  CHECK (outcome IN ('success', 'failure', 'denied', 'error')) NOT VALID;
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('0007');
COMMIT;
ALTER TABLE audit_events VALIDATE CONSTRAINT audit_events_outcome_check;
"""

# MariaDB / MySQL, goose-1 to head with the ``mariadb`` client.  Each DDL statement commits by
# itself there, so the floor is the cheapest statements in order, each as online as the
# server allows: INSTANT column changes, the default UUID() first (so rows the service inserts
# while the ids are filled get one), the ids in one UPDATE, one INPLACE rebuild of ``tokens``
# for NOT NULL, the unique token and the new primary key, and the one copy MariaDB needs to
# add (validate) the audit CHECK.
MARIADB_SCRIPT = """
ALTER TABLE projects ADD COLUMN deactivated_at DATETIME(6) DEFAULT NULL, ALGORITHM=INSTANT;
ALTER TABLE tokens ADD COLUMN deactivated_at DATETIME(6) DEFAULT NULL,
  ADD COLUMN cache_hit_count INTEGER NOT NULL DEFAULT 0, ADD COLUMN id CHAR(36) NULL, ALGORITHM=INSTANT;
ALTER TABLE tokens ALTER COLUMN id SET DEFAULT (UUID()), ALGORITHM=INSTANT;
UPDATE tokens SET id = UUID() WHERE id IS NULL;
ALTER TABLE tokens MODIFY COLUMN id CHAR(36) NOT NULL, ADD CONSTRAINT tokens_token_unique UNIQUE (token),
  DROP PRIMARY KEY, ADD PRIMARY KEY (id), ALGORITHM=INPLACE, LOCK=NONE;
ALTER TABLE audit_events MODIFY COLUMN outcome VARCHAR(20) NOT NULL,
  ADD CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('success','failure','denied','error')),
  ALGORITHM=COPY, LOCK=SHARED;
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('0007');
INSERT INTO goose_db_version (version_id, is_applied) VALUES (4, 1), (5, 1);
"""
