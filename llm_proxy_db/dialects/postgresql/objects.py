"""Every object of a PostgreSQL schema, of every kind (is a database empty?).

A restore loads into an empty database only (else ``--force``, after a safety dump); "empty"
must mean that nothing at all lives in the schema: relations of every kind (tables,
partitioned and foreign tables, views, materialized views, sequences, composite types),
routines (functions, procedures, aggregates), standalone types and domains, collations,
operators and their classes and families, text search objects, conversions, and the
extensions installed into the schema.  An extension's member objects are reported as the
extension, once; an identity column's sequence belongs to its table (an internal dependency).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# (kind as people read it, catalog, its name column, its namespace column, extra condition).
# Relations get their kind from relkind; indexes and TOAST tables belong to a table.
_RELATION_KIND = (
    "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'f' THEN 'foreign table' "
    "WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' "
    "WHEN 'c' THEN 'composite type' WHEN 'i' THEN 'index' WHEN 'I' THEN 'partitioned index' ELSE 'relation' END"
)
_CATALOGS = (
    (_RELATION_KIND, "pg_class c", "c.relname", "c.relnamespace",
     "c.relkind NOT IN ('i', 'I', 't') AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d "
     "WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i'))"),
    ("CASE p.prokind WHEN 'a' THEN 'aggregate' WHEN 'p' THEN 'procedure' ELSE 'function' END",
     "pg_proc p", "p.proname", "p.pronamespace", "true"),
    # Standalone types only: a relation's row type (listed as the relation), an array type and
    # a range's multirange come with their owner.
    ("CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END", "pg_type t", "t.typname", "t.typnamespace",
     "t.typtype IN ('d', 'e', 'r') OR (t.typtype = 'b' AND t.typelem = 0 AND t.typrelid = 0)"),
    ("'collation'", "pg_collation o", "o.collname", "o.collnamespace", "true"),
    ("'operator'", "pg_operator o", "o.oprname", "o.oprnamespace", "true"),
    ("'operator class'", "pg_opclass o", "o.opcname", "o.opcnamespace", "true"),
    ("'operator family'", "pg_opfamily o", "o.opfname", "o.opfnamespace", "true"),
    ("'text search configuration'", "pg_ts_config o", "o.cfgname", "o.cfgnamespace", "true"),
    ("'text search dictionary'", "pg_ts_dict o", "o.dictname", "o.dictnamespace", "true"),
    ("'text search parser'", "pg_ts_parser o", "o.prsname", "o.prsnamespace", "true"),
    ("'text search template'", "pg_ts_template o", "o.tmplname", "o.tmplnamespace", "true"),
    ("'conversion'", "pg_conversion o", "o.conname", "o.connamespace", "true"),
)


def _catalog_query(kind: str, catalog: str, name: str, namespace: str, condition: str) -> str:
    table, alias = catalog.split()
    return (
        f"SELECT {kind} AS kind, {name}::text AS name FROM {catalog} "
        f"WHERE {namespace} = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
        f"AND ({condition}) AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{table}'::regclass "
        f"AND d.objid = {alias}.oid AND d.deptype = 'e')"
    )


SCHEMA_OBJECTS_SQL = " UNION ALL ".join(
    [
        *(_catalog_query(*entry) for entry in _CATALOGS),
        "SELECT 'extension', e.extname::text FROM pg_extension e "
        "WHERE e.extnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())",
    ]
) + " ORDER BY 1, 2"


def schema_objects(connection: Connection) -> list[str]:
    """``kind name`` of every object in the connection's current schema, sorted; [] when empty."""
    return [f"{kind} {name}" for kind, name in connection.exec_driver_sql(SCHEMA_OBJECTS_SQL)]


# Objects sharing the relation namespace (or the type namespace, which every table's row type
# joins) with a table of that name: anything but a plain table blocks or impersonates it.
RELATIONS_NAMED_SQL = (
    f"SELECT c.relname::text, {_RELATION_KIND} "
    "FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
    "AND c.relname = ANY(%(names)s) AND c.relkind <> 'r' "
    "UNION ALL SELECT t.typname::text, CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END FROM pg_type t "
    "WHERE t.typnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
    "AND t.typname = ANY(%(names)s) AND t.typrelid = 0"
)


def relations_named(connection: Connection, names: tuple[str, ...]) -> dict[str, str]:
    """``name -> kind`` for each of ``names`` that exists in the current schema as something
    other than a plain table (a view, a materialized view, a partitioned or foreign table, a
    sequence, an index, a type or domain)."""
    rows = connection.exec_driver_sql(RELATIONS_NAMED_SQL, {"names": list(names)}).all()
    return {str(name): str(kind) for name, kind in rows}
