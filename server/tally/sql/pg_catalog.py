"""An emulated `pg_catalog` and `information_schema` for one caller's tables, in an in-memory
DuckDB that can reach no file and no network: what psql's \\d, JDBC's DatabaseMetaData,
SQLAlchemy's inspector and BI tools ask before any query. PostgreSQL's own OIDs for its types
and system schemas, one OID per tally table, comments as descriptions.

Statements are rewritten on their sqlglot tree before DuckDB sees them (`rewrite`): every
`pg_catalog.X` / `information_schema.X` (and an unqualified `pg_X`) names this module's table
`__pg_X` / `__is_X`, so nothing falls through to DuckDB's own catalog; casts to PostgreSQL's
object-identifier types become lookups; a catalog table not emulated here is an undefined
table, as in PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import duckdb
from sqlglot import exp

from tally.sql import pgtypes
from tally.sql.catalog import SCHEMA, SqlCatalog
from tally.sql.errors import UndefinedTable

PG_CATALOG_OID, PUBLIC_OID, INFO_SCHEMA_OID = 11, 2200, 13000
FIRST_TABLE_OID = 16384
DATABASE = "tally"
USER_OID = 10
SERVER_VERSION = "16.0"
VERSION = (f"PostgreSQL {SERVER_VERSION} (tally SQL over metrics) on x86_64-pc-linux-gnu, "
           "compiled by tally, 64-bit")
SANDBOX = {"enable_external_access": False, "autoinstall_known_extensions": False,
           "autoload_known_extensions": False, "threads": 1, "memory_limit": "2GB",
           # PostgreSQL's arithmetic: 7 / 2 is 3 between integers
           "integer_division": True}
# Well-known OIDs of the catalog tables themselves (`'pg_class'::regclass`).
SYSTEM_TABLE_OIDS = {"pg_class": 1259, "pg_attribute": 1249, "pg_type": 1247, "pg_proc": 1255,
                     "pg_namespace": 2615, "pg_constraint": 2606, "pg_description": 2609,
                     "pg_database": 1262, "pg_index": 2610, "pg_attrdef": 2604,
                     "pg_trigger": 2620, "pg_am": 2601, "pg_inherits": 2611}

# name -> (column definitions). Empty unless filled below.
TABLES: dict[str, str] = {
    "pg_namespace": "oid BIGINT, nspname VARCHAR, nspowner BIGINT, nspacl VARCHAR[]",
    "pg_class": (
        "oid BIGINT, relname VARCHAR, relnamespace BIGINT, reltype BIGINT, reloftype BIGINT, "
        "relowner BIGINT, relam BIGINT, relfilenode BIGINT, reltablespace BIGINT, "
        "relpages INTEGER, reltuples FLOAT, relallvisible INTEGER, reltoastrelid BIGINT, "
        "relhasindex BOOLEAN, relisshared BOOLEAN, relpersistence VARCHAR, relkind VARCHAR, "
        "relnatts SMALLINT, relchecks SMALLINT, relhasrules BOOLEAN, relhastriggers BOOLEAN, "
        "relhassubclass BOOLEAN, relrowsecurity BOOLEAN, relforcerowsecurity BOOLEAN, "
        "relispopulated BOOLEAN, relreplident VARCHAR, relispartition BOOLEAN, "
        "relrewrite BIGINT, relfrozenxid BIGINT, relminmxid BIGINT, relacl VARCHAR[], "
        "reloptions VARCHAR[], relpartbound VARCHAR, relhasoids BOOLEAN"),
    "pg_attribute": (
        "attrelid BIGINT, attname VARCHAR, atttypid BIGINT, attstattarget INTEGER, "
        "attlen SMALLINT, attnum SMALLINT, attndims INTEGER, attcacheoff INTEGER, "
        "atttypmod INTEGER, attbyval BOOLEAN, attalign VARCHAR, attstorage VARCHAR, "
        "attcompression VARCHAR, attnotnull BOOLEAN, atthasdef BOOLEAN, atthasmissing BOOLEAN, "
        "attidentity VARCHAR, attgenerated VARCHAR, attisdropped BOOLEAN, attislocal BOOLEAN, "
        "attinhcount INTEGER, attcollation BIGINT, attacl VARCHAR[], attoptions VARCHAR[], "
        "attfdwoptions VARCHAR[], attmissingval VARCHAR"),
    "pg_type": (
        "oid BIGINT, typname VARCHAR, typnamespace BIGINT, typowner BIGINT, typlen SMALLINT, "
        "typbyval BOOLEAN, typtype VARCHAR, typcategory VARCHAR, typispreferred BOOLEAN, "
        "typisdefined BOOLEAN, typdelim VARCHAR, typrelid BIGINT, typsubscript VARCHAR, "
        "typelem BIGINT, typarray BIGINT, typinput VARCHAR, typoutput VARCHAR, "
        "typreceive VARCHAR, typsend VARCHAR, typmodin VARCHAR, typmodout VARCHAR, "
        "typanalyze VARCHAR, typalign VARCHAR, typstorage VARCHAR, typnotnull BOOLEAN, "
        "typbasetype BIGINT, typtypmod INTEGER, typndims INTEGER, typcollation BIGINT, "
        "typdefaultbin VARCHAR, typdefault VARCHAR, typacl VARCHAR[]"),
    "pg_description": "objoid BIGINT, classoid BIGINT, objsubid INTEGER, description VARCHAR",
    "pg_shdescription": "objoid BIGINT, classoid BIGINT, description VARCHAR",
    "pg_attrdef": "oid BIGINT, adrelid BIGINT, adnum SMALLINT, adbin VARCHAR",
    "pg_index": (
        "indexrelid BIGINT, indrelid BIGINT, indnatts SMALLINT, indnkeyatts SMALLINT, "
        "indisunique BOOLEAN, indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN, "
        "indisexclusion BOOLEAN, indimmediate BOOLEAN, indisclustered BOOLEAN, "
        "indisvalid BOOLEAN, indcheckxmin BOOLEAN, indisready BOOLEAN, indislive BOOLEAN, "
        "indisreplident BOOLEAN, indkey SMALLINT[], indcollation BIGINT[], indclass BIGINT[], "
        "indoption SMALLINT[], indexprs VARCHAR, indpred VARCHAR"),
    "pg_constraint": (
        "oid BIGINT, conname VARCHAR, connamespace BIGINT, contype VARCHAR, "
        "condeferrable BOOLEAN, condeferred BOOLEAN, convalidated BOOLEAN, conrelid BIGINT, "
        "contypid BIGINT, conindid BIGINT, conparentid BIGINT, confrelid BIGINT, "
        "confupdtype VARCHAR, confdeltype VARCHAR, confmatchtype VARCHAR, conislocal BOOLEAN, "
        "coninhcount INTEGER, connoinherit BOOLEAN, conkey SMALLINT[], confkey SMALLINT[], "
        "conpfeqop BIGINT[], conppeqop BIGINT[], conffeqop BIGINT[], conexclop BIGINT[], "
        "conbin VARCHAR"),
    "pg_inherits": "inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, "
                   "inhdetachpending BOOLEAN",
    "pg_am": "oid BIGINT, amname VARCHAR, amhandler VARCHAR, amtype VARCHAR",
    "pg_roles": (
        "oid BIGINT, rolname VARCHAR, rolsuper BOOLEAN, rolinherit BOOLEAN, "
        "rolcreaterole BOOLEAN, rolcreatedb BOOLEAN, rolcanlogin BOOLEAN, "
        "rolreplication BOOLEAN, rolconnlimit INTEGER, rolpassword VARCHAR, "
        "rolvaliduntil TIMESTAMP, rolbypassrls BOOLEAN, rolconfig VARCHAR[]"),
    "pg_user": "usename VARCHAR, usesysid BIGINT, usecreatedb BOOLEAN, usesuper BOOLEAN, "
               "userepl BOOLEAN, usebypassrls BOOLEAN, passwd VARCHAR, valuntil TIMESTAMP, "
               "useconfig VARCHAR[]",
    "pg_database": (
        "oid BIGINT, datname VARCHAR, datdba BIGINT, encoding INTEGER, datlocprovider VARCHAR, "
        "datistemplate BOOLEAN, datallowconn BOOLEAN, datconnlimit INTEGER, "
        "datfrozenxid BIGINT, datminmxid BIGINT, dattablespace BIGINT, datcollate VARCHAR, "
        "datctype VARCHAR, daticulocale VARCHAR, datcollversion VARCHAR, datacl VARCHAR[]"),
    "pg_settings": "name VARCHAR, setting VARCHAR, unit VARCHAR, category VARCHAR, "
                   "short_desc VARCHAR, extra_desc VARCHAR, context VARCHAR, vartype VARCHAR, "
                   "source VARCHAR, min_val VARCHAR, max_val VARCHAR, enumvals VARCHAR[], "
                   "boot_val VARCHAR, reset_val VARCHAR",
    "pg_proc": "oid BIGINT, proname VARCHAR, pronamespace BIGINT, proowner BIGINT, "
               "prolang BIGINT, prokind VARCHAR, prorettype BIGINT, proargtypes BIGINT[], "
               "proretset BOOLEAN, pronargs SMALLINT, proargnames VARCHAR[], prosrc VARCHAR",
    "pg_tablespace": "oid BIGINT, spcname VARCHAR, spcowner BIGINT, spcacl VARCHAR[], "
                     "spcoptions VARCHAR[]",
    "pg_collation": "oid BIGINT, collname VARCHAR, collnamespace BIGINT, collowner BIGINT, "
                    "collprovider VARCHAR, collisdeterministic BOOLEAN, collencoding INTEGER, "
                    "collcollate VARCHAR, collctype VARCHAR",
    "pg_enum": "oid BIGINT, enumtypid BIGINT, enumsortorder FLOAT, enumlabel VARCHAR",
    "pg_range": "rngtypid BIGINT, rngsubtype BIGINT, rngmultitypid BIGINT",
    "pg_extension": "oid BIGINT, extname VARCHAR, extowner BIGINT, extnamespace BIGINT, "
                    "extrelocatable BOOLEAN, extversion VARCHAR",
    "pg_trigger": "oid BIGINT, tgrelid BIGINT, tgname VARCHAR, tgfoid BIGINT, "
                  "tgtype SMALLINT, tgenabled VARCHAR, tgisinternal BOOLEAN, "
                  "tgconstraint BIGINT",
    "pg_rewrite": "oid BIGINT, rulename VARCHAR, ev_class BIGINT, ev_type VARCHAR",
    "pg_policy": "oid BIGINT, polname VARCHAR, polrelid BIGINT, polcmd VARCHAR, "
                 "polpermissive BOOLEAN, polroles BIGINT[], polqual VARCHAR, "
                 "polwithcheck VARCHAR",
    "pg_statistic_ext": "oid BIGINT, stxrelid BIGINT, stxname VARCHAR, stxnamespace BIGINT, "
                        "stxowner BIGINT, stxkeys SMALLINT[], stxkind VARCHAR[], "
                        "stxstattarget INTEGER, stxexprs VARCHAR",
    "pg_publication": "oid BIGINT, pubname VARCHAR, pubowner BIGINT, puballtables BOOLEAN",
    "pg_publication_rel": "oid BIGINT, prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, "
                          "prattrs SMALLINT[]",
    "pg_publication_namespace": "oid BIGINT, pnpubid BIGINT, pnnspid BIGINT",
    "pg_foreign_table": "ftrelid BIGINT, ftserver BIGINT, ftoptions VARCHAR[]",
    "pg_foreign_server": "oid BIGINT, srvname VARCHAR",
    "pg_partitioned_table": "partrelid BIGINT, partstrat VARCHAR, partnatts SMALLINT",
    "pg_sequence": "seqrelid BIGINT, seqtypid BIGINT, seqstart BIGINT, seqincrement BIGINT, "
                   "seqmax BIGINT, seqmin BIGINT, seqcache BIGINT, seqcycle BOOLEAN",
    "pg_depend": "classid BIGINT, objid BIGINT, objsubid INTEGER, refclassid BIGINT, "
                 "refobjid BIGINT, refobjsubid INTEGER, deptype VARCHAR",
    "pg_matviews": "schemaname VARCHAR, matviewname VARCHAR, matviewowner VARCHAR, "
                   "definition VARCHAR",
    "pg_views": "schemaname VARCHAR, viewname VARCHAR, viewowner VARCHAR, definition VARCHAR",
    "pg_tables": "schemaname VARCHAR, tablename VARCHAR, tableowner VARCHAR, "
                 "tablespace VARCHAR, hasindexes BOOLEAN, hasrules BOOLEAN, "
                 "hastriggers BOOLEAN, rowsecurity BOOLEAN",
    "pg_indexes": "schemaname VARCHAR, tablename VARCHAR, indexname VARCHAR, "
                  "tablespace VARCHAR, indexdef VARCHAR",
    "pg_stat_activity": "datid BIGINT, datname VARCHAR, pid INTEGER, usename VARCHAR, "
                        "application_name VARCHAR, state VARCHAR, query VARCHAR",
    "pg_locks": "locktype VARCHAR, pid INTEGER, mode VARCHAR, granted BOOLEAN",
    "pg_event_trigger": "oid BIGINT, evtname VARCHAR",
    "pg_cast": "oid BIGINT, castsource BIGINT, casttarget BIGINT, castfunc BIGINT, "
               "castcontext VARCHAR, castmethod VARCHAR",
    "pg_operator": "oid BIGINT, oprname VARCHAR, oprnamespace BIGINT, oprleft BIGINT, "
                   "oprright BIGINT, oprresult BIGINT",
    "pg_aggregate": "aggfnoid BIGINT, aggkind VARCHAR",
    "pg_language": "oid BIGINT, lanname VARCHAR",
    "pg_auth_members": "roleid BIGINT, member BIGINT, grantor BIGINT, admin_option BOOLEAN",
    "pg_opclass": "oid BIGINT, opcname VARCHAR, opcnamespace BIGINT, opcdefault BOOLEAN",
    "pg_timezone_names": "name VARCHAR, abbrev VARCHAR, utc_offset INTERVAL, is_dst BOOLEAN",
}
INFORMATION_SCHEMA: dict[str, str] = {
    "schemata": "catalog_name VARCHAR, schema_name VARCHAR, schema_owner VARCHAR, "
                "default_character_set_catalog VARCHAR, default_character_set_schema VARCHAR, "
                "default_character_set_name VARCHAR, sql_path VARCHAR",
    "tables": "table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, "
              "table_type VARCHAR, self_referencing_column_name VARCHAR, "
              "reference_generation VARCHAR, user_defined_type_catalog VARCHAR, "
              "user_defined_type_schema VARCHAR, user_defined_type_name VARCHAR, "
              "is_insertable_into VARCHAR, is_typed VARCHAR, commit_action VARCHAR",
    "columns": (
        "table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, column_name VARCHAR, "
        "ordinal_position INTEGER, column_default VARCHAR, is_nullable VARCHAR, "
        "data_type VARCHAR, character_maximum_length INTEGER, character_octet_length INTEGER, "
        "numeric_precision INTEGER, numeric_precision_radix INTEGER, numeric_scale INTEGER, "
        "datetime_precision INTEGER, interval_type VARCHAR, interval_precision INTEGER, "
        "udt_catalog VARCHAR, udt_schema VARCHAR, udt_name VARCHAR, is_identity VARCHAR, "
        "is_generated VARCHAR, is_updatable VARCHAR, collation_name VARCHAR"),
    "views": "table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, "
             "view_definition VARCHAR",
    "table_constraints": "constraint_catalog VARCHAR, constraint_schema VARCHAR, "
                         "constraint_name VARCHAR, table_catalog VARCHAR, "
                         "table_schema VARCHAR, table_name VARCHAR, constraint_type VARCHAR",
    "key_column_usage": "constraint_catalog VARCHAR, constraint_schema VARCHAR, "
                        "constraint_name VARCHAR, table_catalog VARCHAR, "
                        "table_schema VARCHAR, table_name VARCHAR, column_name VARCHAR, "
                        "ordinal_position INTEGER",
    "referential_constraints": "constraint_catalog VARCHAR, constraint_schema VARCHAR, "
                               "constraint_name VARCHAR, unique_constraint_name VARCHAR",
    "routines": "routine_catalog VARCHAR, routine_schema VARCHAR, routine_name VARCHAR, "
                "routine_type VARCHAR",
    "character_sets": "character_set_name VARCHAR",
    "enabled_roles": "role_name VARCHAR",
}

MACROS = f"""
CREATE MACRO format_type(t, m) AS (SELECT any_value(sql_name) FROM __tally_types WHERE oid = t);
CREATE MACRO pg_table_is_visible(o) AS (o IN (SELECT oid FROM __pg_class));
CREATE MACRO pg_type_is_visible(o) AS true;
CREATE MACRO pg_function_is_visible(o) AS true;
CREATE MACRO pg_collation_is_visible(o) AS true;
CREATE MACRO to_regtype(n) AS (SELECT any_value(oid) FROM __pg_type
    WHERE typname = lower(trim(split_part(n, '.', -1), '"')));
CREATE MACRO to_regclass(n) AS (SELECT any_value(oid) FROM __pg_class
    WHERE relname = trim(split_part(n, '.', -1), '"'));
CREATE MACRO pg_opclass_is_visible(o) AS true;
CREATE MACRO pg_conversion_is_visible(o) AS true;
CREATE MACRO pg_get_userbyid(o) AS 'tally';
CREATE MACRO obj_description(o) AS (SELECT any_value(description) FROM __pg_description
    WHERE objoid = o AND objsubid = 0);
CREATE MACRO obj_description(o, c) AS (SELECT any_value(description) FROM __pg_description
    WHERE objoid = o AND objsubid = 0);
CREATE MACRO col_description(o, n) AS (SELECT any_value(description) FROM __pg_description
    WHERE objoid = o AND objsubid = n);
CREATE MACRO shobj_description(o, c) AS NULL::VARCHAR;
CREATE MACRO pg_get_expr(e, r) AS e;
CREATE MACRO pg_get_expr(e, r, p) AS e;
CREATE MACRO pg_get_indexdef(o) AS NULL::VARCHAR;
CREATE MACRO pg_get_indexdef(o, c, p) AS NULL::VARCHAR;
CREATE MACRO pg_get_constraintdef(o) AS NULL::VARCHAR;
CREATE MACRO pg_get_constraintdef(o, p) AS NULL::VARCHAR;
CREATE MACRO pg_get_viewdef(o) AS NULL::VARCHAR;
CREATE MACRO pg_get_viewdef(o, p) AS NULL::VARCHAR;
CREATE MACRO pg_get_triggerdef(o) AS NULL::VARCHAR;
CREATE MACRO pg_get_triggerdef(o, p) AS NULL::VARCHAR;
CREATE MACRO pg_get_partkeydef(o) AS NULL::VARCHAR;
CREATE MACRO pg_get_statisticsobjdef_columns(o) AS NULL::VARCHAR;
CREATE MACRO pg_get_function_result(o) AS NULL::VARCHAR;
CREATE MACRO pg_get_function_arguments(o) AS NULL::VARCHAR;
CREATE MACRO pg_get_serial_sequence(t, c) AS NULL::VARCHAR;
CREATE MACRO pg_relation_is_publishable(o) AS false;
CREATE MACRO pg_relation_size(o) AS 0::BIGINT;
CREATE MACRO pg_total_relation_size(o) AS 0::BIGINT;
CREATE MACRO pg_table_size(o) AS 0::BIGINT;
CREATE MACRO pg_encoding_to_char(e) AS 'UTF8';
CREATE MACRO pg_char_to_encoding(e) AS 6;
CREATE MACRO current_database() AS '{DATABASE}';
CREATE MACRO current_catalog() AS '{DATABASE}';
CREATE MACRO pg_backend_pid() AS 1;
CREATE MACRO pg_is_in_recovery() AS false;
CREATE MACRO pg_postmaster_start_time() AS TIMESTAMP '2026-01-01 00:00:00';
CREATE MACRO txid_current() AS 1::BIGINT;
CREATE MACRO has_table_privilege(a, b) AS true;
CREATE MACRO has_table_privilege(a, b, c) AS true;
CREATE MACRO has_schema_privilege(a, b) AS true;
CREATE MACRO has_schema_privilege(a, b, c) AS true;
CREATE MACRO has_database_privilege(a, b) AS true;
CREATE MACRO has_database_privilege(a, b, c) AS true;
CREATE MACRO has_column_privilege(a, b, c) AS true;
CREATE MACRO has_column_privilege(a, b, c, d) AS true;
CREATE MACRO has_any_column_privilege(a, b) AS true;
CREATE MACRO has_any_column_privilege(a, b, c) AS true;
CREATE MACRO has_function_privilege(a, b) AS true;
CREATE MACRO has_sequence_privilege(a, b) AS true;
CREATE MACRO pg_has_role(a, b) AS true;
CREATE MACRO pg_has_role(a, b, c) AS true;
CREATE MACRO pg_relation_is_updatable(o, b) AS 0;
CREATE MACRO pg_column_is_updatable(o, n, b) AS false;
CREATE MACRO pg_get_keywords() AS TABLE SELECT 'select' AS word, 'R' AS catcode,
    'reserved' AS catdesc WHERE false;
CREATE MACRO quote_ident(s) AS CASE WHEN regexp_matches(s, '^[a-z_][a-z0-9_$]*$') THEN s
    ELSE '"' || replace(s, '"', '""') || '"' END;
CREATE MACRO array_lower(a, d) AS CASE WHEN len(a) > 0 THEN 1 END;
CREATE MACRO array_upper(a, d) AS CASE WHEN len(a) > 0 THEN len(a) END;
CREATE MACRO generate_subscripts(a, d) AS TABLE SELECT unnest(range(1, len(a) + 1)) AS s;
CREATE MACRO pg_tally_version() AS '{VERSION}';
"""

# PostgreSQL's functions that DuckDB has under another name (variadic: no macro can be them).
RENAMED = {"json_build_object": "json_object", "jsonb_build_object": "json_object",
           "json_build_array": "json_array", "jsonb_build_array": "json_array"}


def bottom_up(node: exp.Expression, visit: Callable[[exp.Expression], exp.Expression]
              ) -> exp.Expression:
    """`visit` over every node, children first (a cast within a cast is seen by both)."""
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, bottom_up(value, visit))
        elif isinstance(value, list):
            node.set(key, [bottom_up(v, visit) if isinstance(v, exp.Expression) else v
                           for v in value])
    return visit(node)


def _overloaded(macros: str) -> str:
    """One CREATE MACRO per name with each of its overloads (DuckDB's syntax for them)."""
    bodies: dict[str, list[str]] = {}
    for statement in (m.strip() for m in macros.split(";")):
        if not statement:
            continue
        head, _, rest = statement.partition("(")
        name = head.split()[-1]
        bodies.setdefault(name, []).append(f"({rest}")
    return ";\n".join(f"CREATE MACRO {name}{', '.join(parts)}" for name, parts in
                       bodies.items()) + ";"


class CatalogDatabase:
    """The emulated catalogs of one SqlCatalog, in a sandboxed DuckDB; also the sandbox where
    the outer layers of metric queries run (over registered results only)."""

    def __init__(self, catalog: SqlCatalog) -> None:
        self.catalog = catalog
        self.lock = threading.Lock()
        self.con = duckdb.connect(config=dict(SANDBOX))
        self.table_oids = {t.name: FIRST_TABLE_OID + i * 2 for i, t in
                           enumerate(catalog.tables)}
        self._fill()
        self.con.execute("SET lock_configuration = true")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()

    def close(self) -> None:
        self.con.close()

    def _create(self, name: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        self.con.execute(f"CREATE TABLE {name} ({columns})")
        if rows:
            marks = ", ".join("?" for _ in rows[0])
            self.con.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)

    def _fill(self) -> None:
        con, catalog = self.con, self.catalog
        types = pgtypes.TYPES
        self._create("__tally_types", "oid BIGINT, sql_name VARCHAR",
                     [(t.oid, t.sql_name) for t in types])
        rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLES}
        rows["pg_namespace"] = [(PG_CATALOG_OID, "pg_catalog", USER_OID, None),
                                (PUBLIC_OID, SCHEMA, USER_OID, None),
                                (INFO_SCHEMA_OID, "information_schema", USER_OID, None)]
        arrays = {t.name[1:]: t.oid for t in types if t.name.startswith("_")}
        for t in types:
            element = pgtypes.BY_NAME.get(t.name[1:]) if t.name.startswith("_") else None
            rows["pg_type"].append((
                t.oid, t.name, PG_CATALOG_OID, USER_OID, t.size, 0 < t.size <= 8,
                "p" if t.name == "unknown" else "b", t.category, False, True, ",", 0,
                "array_subscript_handler" if element else "-",
                element.oid if element else 0, arrays.get(t.name, 0),
                "array_in" if element else f"{t.name}in",
                "array_out" if element else f"{t.name}out",
                "array_recv" if element else f"{t.name}recv",
                "array_send" if element else f"{t.name}send", "-", "-", "-",
                "d" if t.size == 8 else "i", "x" if t.size < 0 else "p", False, 0, -1, 0,
                100 if t.category == "S" else 0, None, None, None))
        for name, oid in SYSTEM_TABLE_OIDS.items():
            rows["pg_class"].append(self._class_row(oid, name, PG_CATALOG_OID, 0, ""))
        for table in catalog.tables:
            oid = self.table_oids[table.name]
            rows["pg_class"].append(self._class_row(oid, table.name, PUBLIC_OID,
                                                    len(table.columns), table.comment))
            if table.comment:
                rows["pg_description"].append((oid, 1259, 0, table.comment))
            for number, column in enumerate(table.columns, start=1):
                t = column.type
                rows["pg_attribute"].append((
                    oid, column.name, t.oid, -1, t.size, number, 0, -1, -1, 0 < t.size <= 8,
                    "d" if t.size == 8 else "i", "x" if t.size < 0 else "p", "", False,
                    False, False, "", "", False, True, 0, 100 if t.category == "S" else 0,
                    None, None, None, None))
                if column.comment:
                    rows["pg_description"].append((oid, 1259, number, column.comment))
        rows["pg_am"] = [(2, "heap", "heap_tableam_handler", "t")]
        rows["pg_roles"] = [(USER_OID, "tally", False, True, False, False, True, False, -1,
                             "********", None, False, None)]
        rows["pg_user"] = [("tally", USER_OID, False, False, False, False, "********", None,
                            None)]
        rows["pg_database"] = [(16383, DATABASE, USER_OID, 6, "c", False, True, -1, 0, 0, 1663,
                                "C.UTF-8", "C.UTF-8", None, None, None)]
        rows["pg_tablespace"] = [(1663, "pg_default", USER_OID, None, None)]
        rows["pg_collation"] = [(100, "default", PG_CATALOG_OID, USER_OID, "d", True, -1,
                                 None, None)]
        rows["pg_tables"] = [(SCHEMA, t.name, "tally", None, False, False, False, False)
                             for t in catalog.tables]
        for name, columns in TABLES.items():
            self._create(f"__{name}", columns, rows.get(name, []))
        info: dict[str, list[tuple[Any, ...]]] = {name: [] for name in INFORMATION_SCHEMA}
        info["schemata"] = [(DATABASE, s, "tally", None, None, None, None)
                            for s in ("pg_catalog", "information_schema", SCHEMA)]
        for table in catalog.tables:
            info["tables"].append((DATABASE, SCHEMA, table.name, "BASE TABLE", None, None,
                                   None, None, None, "NO", "NO", None))
            for number, column in enumerate(table.columns, start=1):
                t = column.type
                numeric = {"int8": (64, 2, 0), "float8": (53, 2, None),
                           "int4": (32, 2, 0)}.get(t.name, (None, None, None))
                info["columns"].append((
                    DATABASE, SCHEMA, table.name, column.name, number, None, "YES",
                    t.sql_name, None, None, *numeric,
                    6 if t.category == "D" and t.name != "date" else
                    (0 if t.name == "date" else None), None, None, DATABASE, "pg_catalog",
                    t.name, "NO", "NEVER", "NO", None))
        for name, columns in INFORMATION_SCHEMA.items():
            self._create(f"__is_{name}", columns, info[name])
        con.execute(_overloaded(MACROS))

    @staticmethod
    def _class_row(oid: int, name: str, namespace: int, columns: int,
                   comment: str) -> tuple[Any, ...]:
        return (oid, name, namespace, oid + 1, 0, USER_OID, 2, oid, 0, 0, -1.0, 0, 0, False,
                False, "p", "r", columns, 0, False, False, False, False, False, True, "d",
                False, 0, 0, 0, None, None, None, False)

    # Rewriting a statement for these tables ----------------------------------------------

    def rewrite(self, tree: exp.Expression) -> exp.Expression:
        """The statement over this module's tables and macros (see the module's docstring)."""

        def visit(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
                return self._table(node)
            if isinstance(node, exp.Table):  # a table function: pg_catalog.unnest(x) AS y
                node.set("db", None)
                alias = node.args.get("alias")
                if isinstance(alias, exp.TableAlias) and not alias.columns and alias.this:
                    alias.set("columns", [alias.this.copy()])
                return node
            if isinstance(node, exp.Column) and node.args.get("db") is not None:
                node = node.copy()
                node.set("db", None)
                node.set("catalog", None)
                return node
            if isinstance(node, exp.Cast):
                return self._cast(node)
            if isinstance(node, exp.DataType) or type(node).__name__ == "ObjectIdentifier":
                return _type(node)
            if isinstance(node, exp.Collate):
                return node.this
            if isinstance(node, exp.Anonymous) and str(node.this).lower() in RENAMED:
                return exp.Anonymous(this=RENAMED[str(node.this).lower()],
                                     expressions=node.expressions)
            if isinstance(node, exp.Dot) and isinstance(node.this, exp.Identifier) and \
                    node.this.name.lower() == "pg_catalog" and isinstance(node.expression,
                                                                          exp.Func):
                return node.expression
            return node

        return bottom_up(tree.copy(), visit)

    def _table(self, node: exp.Table) -> exp.Expression:
        schema = node.args["db"].name.lower() if node.args.get("db") is not None else ""
        name = node.name.lower()
        if schema == "information_schema":
            if name not in INFORMATION_SCHEMA:
                raise UndefinedTable(f'relation "information_schema.{name}" does not exist.')
            target = f"__is_{name}"
        elif schema == "pg_catalog" or (not schema and name.startswith("pg_")):
            if name not in TABLES:
                raise UndefinedTable(f'relation "pg_catalog.{name}" does not exist.')
            target = f"__{name}"
        else:
            return node
        alias = node.alias or name
        return exp.Table(this=exp.to_identifier(target)).as_(alias)

    def _cast(self, node: exp.Cast) -> exp.Expression:
        """A cast to regclass or regproc: a look-up (the other types are mapped by _type)."""
        kind = _user_type(node.to)
        value = node.this
        if kind == "regclass":
            if isinstance(value, exp.Literal) and value.is_string:
                name = value.this.split(".")[-1].strip('"')
                oid = SYSTEM_TABLE_OIDS.get(name) or self.table_oids.get(name)
                if oid is None and not value.this.isdigit():
                    raise UndefinedTable(f'relation "{value.this}" does not exist.')
                return exp.Literal.number(oid if oid is not None else int(value.this))
            return exp.Cast(this=value, to=exp.DataType.build("BIGINT"))
        if kind in ("regproc", "regprocedure"):
            if isinstance(value, exp.Literal):
                return exp.Literal.string(value.this.split(".")[-1])
            return exp.Cast(this=value, to=exp.DataType.build("VARCHAR"))
        return node


def _user_type(node: exp.Expression) -> str | None:
    """The name of a user-defined (PostgreSQL-only) type: pg_catalog.regtype -> regtype."""
    if type(node).__name__ == "ObjectIdentifier":
        return str(node.this).lower()
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.USERDEFINED and \
            node.args.get("kind") is not None:
        kind = node.args["kind"]
        ident = kind.expression if isinstance(kind, exp.Dot) else kind
        return ident.name.lower()
    if isinstance(node, exp.DataType):
        this = node.this
        name = this if isinstance(this, str) else getattr(this, "name", "")
        if name.lower() in ("regclass", "regproc", "regprocedure", "regtype"):
            return name.lower()
    return None


def _type(node: exp.Expression) -> exp.Expression:
    """PostgreSQL's own types as DuckDB's (oid, int2, regtype, name, "char" ...)."""
    if type(node).__name__ == "ObjectIdentifier":
        if _user_type(node) in ("regclass", "regproc", "regprocedure"):
            return node
        return exp.DataType.build("BIGINT")
    if isinstance(node, exp.DataType):
        if node.this == exp.DataType.Type.NAME:
            return exp.DataType.build("VARCHAR")
        name = _user_type(node)
        if name is None or name in ("regclass", "regproc", "regprocedure"):
            return node
        found = pgtypes.BY_NAME.get(name)
        if name in ("regnamespace", "regrole", "xid", "cid", "tid", "regoper"):
            return exp.DataType.build("BIGINT")
        if name in ("int2vector", "oidvector"):
            return exp.DataType.build("BIGINT[]")
        if found is not None:
            return exp.DataType.build(found.duckdb)
    return node
