"""MySQL's facts (MySQL 8 and MariaDB): names, goose bookkeeping, how revisions run, fingerprint quirks, history."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from llm_proxy_db.dialects.base import ExtraCheckState

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


DRIVER = "mysql"
SQLALCHEMY_NAME = "mysql"
SQLALCHEMY_DRIVER = "mysql+pymysql"
# The driver module, the database as messages name it, and the extra that installs the driver.
DRIVER_PACKAGE = ("pymysql", "MySQL/MariaDB", "mysql")
URL_SCHEMES = ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql")
DEFAULT_TCP_ADDRESS = "127.0.0.1:3306"
DEFAULT_UNIX_SOCKET = "/tmp/mysql.sock"
DSN_EXAMPLE = "user:password@tcp(host:3306)/dbname?parseTime=true"


# Printed before a ``--sql`` script: nothing, the mariadb / mysql client stops at the first
# error unless it is given --force.
OFFLINE_SCRIPT_PREAMBLE = ""
OFFLINE_CREATE_PREAMBLE = ""  # nothing: the server keeps its own journal
OFFLINE_URL = "mysql://offline@localhost/offline"


# The service's goose bookkeeping on MySQL: our revision -> the highest goose version whose
# effect that revision's schema has (versions 1..N), and goose's own CREATE TABLE.  MySQL's
# goose file 1 already says api_key: no revision below 0006 equals a goose version.
GOOSE_TABLE = "goose_db_version"
GOOSE_VERSIONS: Mapping[str, int] | None = {
    "0001": 0, "0002": 0, "0003": 0, "0004": 0, "0005": 0, "0006": 4, "0007": 5,
}

GOOSE_TABLE_DDL: str | None = (
    f"CREATE TABLE {GOOSE_TABLE} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
    "version_id BIGINT NOT NULL, is_applied BOOLEAN NOT NULL, "
    "tstamp TIMESTAMP NULL DEFAULT now(), PRIMARY KEY (id))"
)

LATEST_GOOSE_VERSION = 5


# Which goose MySQL version produced each known state's shape (adoption checks that the
# goose table agrees): states with openai_api_key never existed on MySQL.
STATE_GOOSE_VERSIONS: Mapping[str, tuple[int, ...]] = {
    "goose-1": (), "0003": (), "0004": (), "0005": (), "0006": (4,), "0007": (5,),
}


# MySQL 8.0.16+ names the inline CHECK of goose file 1 audit_events_chk_1 and goose file 5's
# MODIFY COLUMN does not drop it (reference section 3): such a database rejects denied/error.
MYSQL8_TRAP_CHECK = "audit_events_chk_1"
MYSQL8_TRAP_DESCRIPTION = (
    "goose MySQL version 5 as MySQL 8 leaves it: the old two-value CHECK audit_events_chk_1 "
    "beside the new one (denied/error events rejected); revision 0007 drops it (a fix)"
)


def goose_offline_sql(wanted: int) -> list[str]:
    """Goose versions 1..``wanted`` recorded by statements that need no reading (``--sql``).

    No ``DO`` blocks, no ``generate_series``.  Below the first goose version the table goes,
    as online (``service.goose.sync`` trims every version and drops a table left with its seed
    row only): ``DROP TABLE IF EXISTS`` needs no reading.
    """
    if wanted == 0:
        return [f"DROP TABLE IF EXISTS {GOOSE_TABLE}"]
    assert GOOSE_TABLE_DDL is not None
    missing = f"NOT EXISTS (SELECT 1 FROM {GOOSE_TABLE} g WHERE g.version_id = {{v}})"
    return [
        GOOSE_TABLE_DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1),
        f"DELETE FROM {GOOSE_TABLE} WHERE version_id > 0 AND (version_id > {wanted} OR is_applied = false)",
        *(
            f"INSERT INTO {GOOSE_TABLE} (version_id, is_applied) SELECT {v}, true FROM DUAL "
            f"WHERE {missing.format(v=v)}"
            for v in range(0, wanted + 1)
        ),
    ]


# How revisions run here: every DDL statement commits on its own, so a revision that stops
# half-way is resumed step by step (llm_proxy_db.dialects.mysql.ddl), not rolled back; a dump only before a
# downgrade allowed to lose data.
TRANSACTIONAL_DDL = False
FOREIGN_KEYS_OFF_WHILE_MIGRATING = False
BATCH_ALTER = False
LOCK_TIMEOUT_RETRIES = False
BACKUP_BEFORE_EVERY_CHANGE = False


def partly_applied(connection: Connection, revision: str, module: ModuleType) -> str | None:
    """How far ``revision`` (its revision file's ``module``) got when a run stopped half-way
    through it (None: not started)."""
    from llm_proxy_db.dialects.mysql import ddl  # ddl loads SQLAlchemy and Alembic: not at start-up

    return ddl.partly_applied(connection, revision, module)


def reverted_steps(connection: Connection, module: object) -> tuple[int, list[str]] | None:
    """How far a downgrade of the revision in ``module`` got (its ``mysql_downgrade_steps``)."""
    from llm_proxy_db.dialects.mysql import ddl  # ddl loads SQLAlchemy and Alembic: not at start-up

    return ddl.reverted_steps(connection, module)


# The service's starts leave no schema artefacts here (goose runs its files, nothing else).
SERVICE_START_ARTEFACTS = False


def new_token_id_sql() -> str | None:
    """None: ``tokens.id`` is never NULL here (:mod:`llm_proxy_db.service.token_ids`)."""
    return None


# Whether tokens.id leads an index (its primary key from 0005 on): only then is id = '' looked up, not scanned for.
TOKEN_ID_INDEXED = (
    "SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tokens' "
    "AND COLUMN_NAME = 'id' AND SEQ_IN_INDEX = 1"
)
EMPTY_TOKEN_IDS = "SELECT count(*) FROM tokens WHERE id = ''"


def empty_token_ids(connection: Connection) -> int:
    """Tokens whose id is ``''``: what an older release's INSERT (no ``id``) writes after 0005
    on a server without strict mode (docs/operations.md); at most one, ``id`` being the
    primary key.  0 without an index leading with ``tokens.id`` (before 0005: none can exist,
    and counting would scan the table)."""
    if connection.exec_driver_sql(f"{TOKEN_ID_INDEXED} LIMIT 1").first() is None:
        return 0
    return int(connection.exec_driver_sql(EMPTY_TOKEN_IDS).scalar_one())


# MySQL's head schema: llm_proxy_db.schema.head_mysql.
HEAD_SCHEMA = "mysql"
NAMED_CONSTRAINTS = True
INDEX_REFLECTION_OPTIONS: Mapping[str, Any] = {}
# The triggers (name, table) of the connected database: the service has none (migrate drift).
TRIGGERS_SQL = (
    "SELECT trigger_name, event_object_table FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
)


def reflect_checks(connection: Connection, tables: list[str]) -> dict[str, list[dict[str, Any]]] | None:
    """Every table's CHECK constraints read from the server (SQLAlchemy misses MariaDB's
    column-level CHECKs)."""
    from llm_proxy_db.dialects.mysql.ddl import check_constraints  # SQLAlchemy and Alembic: not at start-up

    return {name: check_constraints(connection, name) for name in tables}


def schema_cookie(connection: Connection) -> object | None:
    """None: no cheap marker of schema changes, so the schema is read again."""
    del connection
    return None


def server_family(connection: Connection) -> str:
    """``mariadb-<major.minor>`` or ``mysql-<major.minor>``: the two reflect CHECKs and
    defaults differently, and so may their releases."""
    version = tuple(connection.dialect.server_version_info or (0, 0))[:2]
    name = "mariadb" if getattr(connection.dialect, "is_mariadb", False) else "mysql"
    return f"{name}-{'.'.join(str(part) for part in version)}"


# Adoption's known states follow the service's history here: goose 1-4 databases created
# with api_key from the start; goose's own numbering; the MySQL 8 trap state.
API_KEY_VARIANTS = True
SEED_ROW_STATES: tuple[str, ...] = ()
EXTRA_CHECK_STATE: ExtraCheckState | None = ExtraCheckState(
    name="goose-5-mysql8",
    revision="0006",
    description=MYSQL8_TRAP_DESCRIPTION,
    based_on="0007",
    table="audit_events",
    check="outcome IN ('success', 'failure')",
    constraint_name=MYSQL8_TRAP_CHECK,
    goose_versions=(5,),
)

# Backups are mariadb-dump / mysqldump files (llm_proxy_db.dialects.mysql.client).
BACKUP_KIND = "dump"
