"""The goose-1 MySQL/MariaDB shape at benchmark size, built by the server itself.

The tables are the service's MySQL goose file 1 (reference section 3) created bare (primary
keys and the inline UNIQUE/CHECK only), filled with ``INSERT ... SELECT`` from MariaDB's
sequence engine (``seq_1_to_N``), then given their secondary indexes and the foreign key
(sorted index builds, no per-row index maintenance), as a dump restore would.  The result is
what goose file 1 leaves, with goose's version table at 1.

A template database per size is built once and kept on the server; every benchmark round
clones it the same way (bare tables, ``INSERT ... SELECT`` from the template, indexes after).
Everything runs through the plain ``mariadb`` client.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from datagen import Size

from llm_proxy_db.dialects.mysql import GOOSE_TABLE_DDL, parse_database_url

TABLES = ("goose_db_version", "projects", "tokens", "audit_events")
_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
BARE_TABLES = f"""
{GOOSE_TABLE_DDL};
CREATE TABLE projects (
  id VARCHAR(191) PRIMARY KEY,
  name VARCHAR(255) NOT NULL UNIQUE,
  api_key TEXT NOT NULL,
  is_active BOOLEAN NOT NULL DEFAULT TRUE,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) {_OPTIONS};
CREATE TABLE tokens (
  token VARCHAR(191) PRIMARY KEY,
  project_id VARCHAR(191) NOT NULL,
  expires_at DATETIME(6),
  is_active BOOLEAN NOT NULL DEFAULT TRUE,
  request_count INTEGER NOT NULL DEFAULT 0,
  max_requests INTEGER,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  last_used_at DATETIME(6)
) {_OPTIONS};
CREATE TABLE audit_events (
  id VARCHAR(191) PRIMARY KEY,
  timestamp DATETIME(6) NOT NULL,
  action VARCHAR(255) NOT NULL,
  actor VARCHAR(255) NOT NULL,
  project_id VARCHAR(191),
  request_id VARCHAR(191),
  correlation_id VARCHAR(191),
  client_ip VARCHAR(45),
  method VARCHAR(10),
  path TEXT,
  user_agent TEXT,
  outcome VARCHAR(20) NOT NULL CHECK (outcome IN ('success','failure')),
  reason TEXT,
  token_id VARCHAR(191),
  metadata TEXT
) {_OPTIONS};
"""
INDEXES = """
CREATE INDEX idx_projects_name ON projects(name);
ALTER TABLE tokens ADD INDEX idx_tokens_project_id (project_id),
  ADD INDEX idx_tokens_expires_at (expires_at), ADD INDEX idx_tokens_is_active (is_active),
  ADD FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE;
ALTER TABLE audit_events ADD INDEX idx_audit_timestamp (timestamp),
  ADD INDEX idx_audit_action (action), ADD INDEX idx_audit_project_id (project_id),
  ADD INDEX idx_audit_client_ip (client_ip), ADD INDEX idx_audit_request_id (request_id),
  ADD INDEX idx_audit_outcome (outcome), ADD INDEX idx_audit_ip_action (client_ip, action);
"""
ROWS = """
INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, 1), (1, 1);
INSERT INTO projects (id, name, api_key, created_at, updated_at)
SELECT CONCAT('p', LPAD(seq, 7, '0')), CONCAT('project-', LPAD(seq, 7, '0')),
       CONCAT('sk-', LPAD(seq, 40, '0')), '2025-06-01 12:00:00', '2025-06-01 12:00:00'
FROM seq_1_to_{projects};
INSERT INTO tokens (token, project_id, expires_at, is_active, request_count, max_requests,
                    created_at, last_used_at)
SELECT CONCAT('tok_', LPAD(seq, 28, '0')), CONCAT('p', LPAD(1 + seq % {projects}, 7, '0')),
       IF(seq % 3 = 0, NULL, '2026-06-01 00:00:00'), seq % 10 <> 0, seq % 1000,
       IF(seq % 4 = 0, NULL, 1000), '2025-06-01 12:00:00',
       IF(seq % 2 = 0, NULL, '2025-07-01 00:00:00')
FROM seq_1_to_{tokens};
INSERT INTO audit_events
SELECT CONCAT('ev_', LPAD(seq, 28, '0')), TIMESTAMP '2025-06-01 00:00:00' + INTERVAL seq SECOND,
       ELT(1 + seq % 4, 'token.use', 'token.create', 'project.update', 'proxy.request'),
       'management', CONCAT('p', LPAD(1 + seq % {projects}, 7, '0')),
       CONCAT('req-', LPAD(seq, 24, '0')), CONCAT('corr-', LPAD(seq, 20, '0')),
       CONCAT('10.', seq % 250, '.', (seq DIV 250) % 250, '.', seq % 7), 'POST',
       '/v1/chat/completions', 'openai-python/1.40.0', IF(seq % 20 = 0, 'failure', 'success'),
       IF(seq % 20 = 0, 'rate limited', NULL), CONCAT('tok_', LPAD(1 + seq % {tokens}, 28, '0')),
       '{{"model":"gpt-4o","status":200}}'
FROM seq_1_to_{events};
"""
# Bulk-load settings of the loading session only (the service's sessions keep theirs).
LOAD = "SET SESSION foreign_key_checks = 0, unique_checks = 0;\n"


@dataclass(frozen=True)
class Server:
    """Where the benchmark may create databases: host, port, user, password."""

    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> Server:
        """From a ``mysql://`` URL or the service's DSN (the database part is ignored)."""
        parsed = parse_database_url(url)
        return cls(parsed.host or "127.0.0.1", parsed.port or 3306, parsed.username or "root", parsed.password or "")

    def url(self, database: str) -> str:
        """The service-style URL of ``database`` on this server."""
        from urllib.parse import quote

        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"mysql://{auth}@{self.host}:{self.port}/{database}"

    def client(self, database: str | None = None) -> tuple[list[str], dict[str, str]]:
        """The ``mariadb`` client's argv and environment (the password in ``MYSQL_PWD``)."""
        argv = ["mariadb", "--batch", "--skip-column-names", "-h", self.host, "-P", str(self.port),
                "-u", self.user, *([database] if database else [])]
        env = {**os.environ, **({"MYSQL_PWD": self.password} if self.password else {})}
        return argv, env

    def run(self, script: str, database: str | None = None) -> str:
        """Run ``script`` with the ``mariadb`` client; stops at the first error."""
        argv, env = self.client(database)
        out = subprocess.run(argv, input=script, text=True, capture_output=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"mariadb client failed: {out.stderr.strip()[-2000:]}")
        return out.stdout

    def connect(self, database: str | None = None):  # type: ignore[no-untyped-def]
        """An autocommit PyMySQL connection, as the service's driver connects."""
        import pymysql

        return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               database=database, charset="utf8mb4", autocommit=True)


def template_name(size: Size) -> str:
    """The cached template of ``size`` on the server."""
    return f"llmproxy_bench_goose1_{size.projects}_{size.tokens}_{size.events}"


def ensure_template(server: Server, size: Size) -> str:
    """The goose-1 template of ``size``, built (into a partial database, then moved) if missing."""
    name = template_name(size)
    if server.run(f"SHOW DATABASES LIKE '{name}'").strip():
        return name
    partial = f"{name}_partial"
    server.run(f"DROP DATABASE IF EXISTS `{partial}`; CREATE DATABASE `{partial}` "
               "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;")
    server.run(LOAD + BARE_TABLES + ROWS.format(**vars(size)) + INDEXES + "ANALYZE TABLE tokens, audit_events;",
               partial)
    moves = ", ".join(f"`{partial}`.`{table}` TO `{name}`.`{table}`" for table in TABLES)
    server.run(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
               f"RENAME TABLE {moves}; DROP DATABASE `{partial}`;")
    return name


def clone(server: Server, template: str, target: str) -> None:
    """``target``, a fresh copy of ``template``: bare tables, rows copied, indexes after."""
    copies = "".join(f"INSERT INTO `{table}` SELECT * FROM `{template}`.`{table}`;\n" for table in TABLES)
    server.run(f"DROP DATABASE IF EXISTS `{target}`; CREATE DATABASE `{target}` "
               "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;")
    server.run(LOAD + BARE_TABLES + copies + INDEXES + "ANALYZE TABLE tokens, audit_events;", target)


def drop(server: Server, database: str) -> None:
    """Drop a database the benchmark created."""
    server.run(f"DROP DATABASE IF EXISTS `{database}`;")
