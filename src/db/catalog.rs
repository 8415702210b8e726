//! Catalog queries: schemas, tables, columns, constraints and privileges as PostgreSQL's own
//! catalogs describe them (nothing of pg_tenancy's tables here; see `registry`).

use pgrx::prelude::*;

use crate::db::report::{raise, OrRaise};
use crate::db::spi::get_one;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::names::quote_ident;

/// The OID of the schema named exactly `name`.
pub fn schema_oid(name: &str) -> Option<pg_sys::Oid> {
    get_one::<pg_sys::Oid>(
        "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) $1::pg_catalog.text",
        &[name.into()],
    )
}

/// Whether the current user may create schemas in the current database.
pub fn can_create_schemas() -> bool {
    get_one::<bool>(
        "SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')",
        &[],
    )
    .unwrap_or(false)
}

/// Whether the current user owns (or is a member of the owner of) the schema.
pub fn owns_schema(oid: pg_sys::Oid) -> bool {
    get_one::<bool>(
        "SELECT pg_catalog.pg_has_role(nspowner, 'USAGE') FROM pg_catalog.pg_namespace WHERE oid OPERATOR(pg_catalog.=) $1",
        &[oid.into()],
    )

    .unwrap_or(false)
}

/// `current_user`: the role whose rights are in effect.
pub fn current_user_name() -> String {
    get_one::<String>("SELECT CURRENT_USER::pg_catalog.text", &[]).unwrap_or_default()
}

/// Whether the current user has `USAGE` on schema `oid`; `None` when no such schema exists (any
/// more: a concurrent drop may commit between two catalog reads).
pub fn schema_usage(oid: pg_sys::Oid) -> Option<bool> {
    get_one::<bool>(
        "SELECT pg_catalog.has_schema_privilege($1, 'USAGE')",
        &[oid.into()],
    )
}

pub fn current_database() -> String {
    get_one::<String>("SELECT pg_catalog.current_database()::pg_catalog.text", &[])
        .unwrap_or_default()
}

/// A table's name as SQL text (qualified and quoted where needed), or 42P01.
pub fn table_info(oid: pg_sys::Oid) -> String {
    get_one::<String>(
        "SELECT c.oid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::\"char\"[])",
        &[oid.into()],
    )
    .unwrap_or_else(|| {
        // Named as regclass prints it (the bare OID when no relation has it).
        let name = get_one::<String>(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[oid.into()],
        )
        .unwrap_or_else(|| oid.to_u32().to_string());
        raise(
            TenancyError::new(
                SqlState::UndefinedTable,
                format!("relation {name} is not a table"),
            )
            .hint("Pass an ordinary or partitioned table (not a view, sequence, index or foreign table)."),
        )
    })
}

/// Whether table `oid` is a temporary table (`relpersistence 't'`).
pub fn is_temporary(oid: pg_sys::Oid) -> bool {
    get_one::<bool>(
        "SELECT c.relpersistence OPERATOR(pg_catalog.=) 't' FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[oid.into()],
    )
    .unwrap_or(false)
}

/// The managed table a row trigger fires for: `relid` itself, or, for a partition (row triggers
/// fire on the leaf), its ancestor registered in `tenancy.managed_table_settings`.
pub fn managed_ancestor(relid: pg_sys::Oid) -> Option<(pg_sys::Oid, String)> {
    let oid = crate::db::identity::as_extension_owner(|| {
        get_one::<pg_sys::Oid>(
            "SELECT a.relid::pg_catalog.oid \
             FROM pg_catalog.pg_partition_ancestors($1::pg_catalog.oid::pg_catalog.regclass) WITH ORDINALITY a(relid, n) \
             WHERE EXISTS (SELECT FROM tenancy.managed_table_settings s WHERE s.tbl OPERATOR(pg_catalog.=) a.relid) \
             ORDER BY a.n LIMIT 1",
            &[relid.into()],
        )
    })?;
    let name = get_one::<String>(
        "SELECT $1::pg_catalog.regclass::pg_catalog.text",
        &[oid.into()],
    )?;
    Some((oid, name))
}

/// Whether a relation with this OID exists.
pub fn relation_exists(oid: pg_sys::Oid) -> bool {
    get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1)",
        &[oid.into()],
    )
    .unwrap_or(false)
}

/// The extension a table belongs to (a member of it, as `pg_depend` records), if any; a table in
/// pg_tenancy's own schema counts as pg_tenancy's even if it was taken out of the extension.
pub fn extension_of(tbl: pg_sys::Oid) -> Option<String> {
    get_one::<String>(
        "SELECT e.extname::pg_catalog.text FROM pg_catalog.pg_depend d \
         JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid \
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.objid OPERATOR(pg_catalog.=) $1 \
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass \
           AND d.deptype OPERATOR(pg_catalog.=) 'e' \
         UNION ALL \
         SELECT 'pg_tenancy' FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.oid OPERATOR(pg_catalog.=) $1 AND n.nspname OPERATOR(pg_catalog.=) 'tenancy' \
         LIMIT 1",
        &[tbl.into()],
    )
}

/// "Columns of T: "a", "b"." — the hint for an unknown column.
pub fn columns_hint(table: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    format!("Columns of {table}: {}.", cols.join(", "))
}

/// The table's live column names, in order.
pub fn table_columns(oid: pg_sys::Oid) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            "SELECT attname::pg_catalog.text FROM pg_catalog.pg_attribute \
             WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped ORDER BY attnum",
            None,
            &[oid.into()],
        )
        .or_raise()
        .map(|r| r.get::<String>(1).or_raise().unwrap_or_default())
        .collect()
    })
}

/// The column's type as SQL text (`bigint`, `text`, `public.tenant_id`).
pub fn column_type(tbl: pg_sys::Oid, col: &str) -> String {
    get_one::<String>(
        "SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute \
         WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attname OPERATOR(pg_catalog.=) $2::pg_catalog.text AND NOT attisdropped",
        &[tbl.into(), col.into()],
    )
    .unwrap_or_default()
}

/// The table's name without schema.
pub fn relname(tbl: pg_sys::Oid) -> String {
    get_one::<String>(
        "SELECT relname::pg_catalog.text FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
        &[tbl.into()],
    )
    .unwrap_or_default()
}

pub fn primary_key_columns(tbl: pg_sys::Oid) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            "SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_constraint k \
             CROSS JOIN LATERAL pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u(attnum, n) \
             JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) k.conrelid AND a.attnum OPERATOR(pg_catalog.=) u.attnum \
             WHERE k.conrelid OPERATOR(pg_catalog.=) $1 AND k.contype OPERATOR(pg_catalog.=) 'p' ORDER BY u.n",
            None,
            &[tbl.into()],
        )
        .or_raise()
        .map(|r| r.get::<String>(1).or_raise().unwrap_or_default())
        .collect()
    })
}

/// Whether a unique, non-partial index covers exactly these columns (in any order).
pub fn has_unique_on(tbl: pg_sys::Oid, cols: &[String]) -> bool {
    get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i \
           WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL \
             AND i.indnkeyatts OPERATOR(pg_catalog.=) pg_catalog.cardinality($2) \
             AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attname::pg_catalog.text) \
                  FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey)) \
                 OPERATOR(pg_catalog.=) (SELECT pg_catalog.array_agg(x ORDER BY x) FROM pg_catalog.unnest($2) AS x))",
        &[tbl.into(), cols.to_vec().into()],
    )
    .unwrap_or(false)
}

/// `tenancy.describe_schema(schema)` as JSON text.
pub fn describe_schema(schema: &str) -> String {
    // As the schema's owner, in a security-restricted operation (see _describe_schema).
    let Some(owner) = owner_of_schema_named(schema) else {
        // No such schema: _describe_schema raises its own error (3F000, or 22004).
        return get_one::<String>(
            "SELECT tenancy._describe_schema($1::pg_catalog.text::pg_catalog.name)::pg_catalog.text",
            &[schema.into()],
        )
        .unwrap_or_default();
    };
    crate::db::identity::as_tenant_owner(owner.oid, "pg_catalog, pg_temp", || {
        get_one::<String>(
        "SELECT tenancy._describe_schema($1::pg_catalog.text::pg_catalog.name)::pg_catalog.text",
        &[schema.into()],
    )
    })
    .unwrap_or_default()
}

/// The owner of a table given as SQL text (`regclass` input).
pub fn table_owner(table: &str) -> pg_sys::Oid {
    get_one::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
        &[table.into()],
    )
    .unwrap_or_else(|| {
        raise(
            TenancyError::new(SqlState::UndefinedTable, format!("managed table {table} does not exist"))
                .hint("SELECT * FROM tenancy.managed_tables lists the managed tables; tenancy.unmanage_tenant removes one."),
        )
    })
}

/// Whether the table (given as SQL text, `regclass` input) has a trigger of this name.
pub fn has_trigger(table: &str, name: &str) -> bool {
    get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger t \
         WHERE t.tgrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1::pg_catalog.text) \
           AND t.tgname OPERATOR(pg_catalog.=) $2::pg_catalog.text)",
        &[table.into(), name.into()],
    )
    .unwrap_or(false)
}

/// Whether the table (by OID) has a trigger of this name.
pub fn rel_has_trigger(tbl: pg_sys::Oid, name: &str) -> bool {
    get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger t \
         WHERE t.tgrelid OPERATOR(pg_catalog.=) $1 AND t.tgname OPERATOR(pg_catalog.=) $2::pg_catalog.text)",
        &[tbl.into(), name.into()],
    )
    .unwrap_or(false)
}

/// Whether `tbl` has a native foreign key on exactly `columns` (any order) to `referenced`.
pub fn has_native_fk(tbl: pg_sys::Oid, referenced: pg_sys::Oid, columns: &[String]) -> bool {
    get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint k \
         WHERE k.contype OPERATOR(pg_catalog.=) 'f' AND k.conrelid OPERATOR(pg_catalog.=) $1 \
           AND k.confrelid OPERATOR(pg_catalog.=) $2 \
           AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attname) FROM pg_catalog.pg_attribute a \
                WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.=) ANY (k.conkey)) \
               OPERATOR(pg_catalog.=) (SELECT pg_catalog.array_agg(c ORDER BY c) FROM pg_catalog.unnest($3::pg_catalog.text[]) c))",
        &[tbl.into(), referenced.into(), columns.to_vec().into()],
    )
    .unwrap_or(false)
}

/// Whether the table has a row-level security policy of this name.
pub fn has_policy(tbl: pg_sys::Oid, name: &str) -> bool {
    get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_policy p \
         WHERE p.polrelid OPERATOR(pg_catalog.=) $1 AND p.polname OPERATOR(pg_catalog.=) $2::pg_catalog.text)",
        &[tbl.into(), name.into()],
    )
    .unwrap_or(false)
}

/// A role, by OID and name.
#[derive(Clone, Debug)]
pub struct Role {
    pub oid: pg_sys::Oid,
    pub name: String,
}

fn role_where(query: &str, arg: pgrx::datum::DatumWithOid) -> Option<Role> {
    Spi::connect(|c| {
        let t = c.select(query, Some(1), &[arg]).or_raise();
        if t.is_empty() {
            return None;
        }
        let (oid, name) = t.first().get_two::<pg_sys::Oid, String>().or_raise();
        Some(Role {
            oid: oid?,
            name: name?,
        })
    })
}

/// The owner of the schema with this OID (which the caller has just locked and checked).
pub fn schema_owner(oid: pg_sys::Oid) -> Role {
    // A kept plan and a syscache lookup (pg_roles is a view with joins): every fleet step asks.
    let owner = crate::db::spi::kept_rows(
        "SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) $1",
        &[pg_sys::PgOid::BuiltIn(pg_sys::PgBuiltInOids::OIDOID)],
        &[oid.into()],
        |r| r.get::<pg_sys::Oid>(1).or_raise(),
    )
    .into_iter()
    .next()
    .flatten()
    .unwrap_or_else(|| missing_schema(&oid.to_u32().to_string()));
    role_name(owner).unwrap_or_else(|| missing_schema(&oid.to_u32().to_string()))
}

/// The owner of schema `nsp` as read with its tenant ([`crate::db::registry::run_state`]).
pub fn role_of(owner: Option<pg_sys::Oid>, nsp: pg_sys::Oid) -> Role {
    owner
        .and_then(role_name)
        .unwrap_or_else(|| missing_schema(&nsp.to_u32().to_string()))
}

/// The role with this OID by a syscache lookup, if it exists.
fn role_name(oid: pg_sys::Oid) -> Option<Role> {
    // SAFETY: a syscache lookup; noerr: NULL when there is no such role.
    let name = unsafe { pg_sys::GetUserNameFromId(oid, true) };
    if name.is_null() {
        return None;
    }
    // SAFETY: a palloc'd C string, freed with the memory context.
    let name = unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    Some(Role { oid, name })
}

/// The owner of the schema named `name`, if there is one.
fn owner_of_schema_named(name: &str) -> Option<Role> {
    role_where(
        "SELECT r.oid, r.rolname::pg_catalog.text FROM pg_catalog.pg_namespace n \
         JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner \
         WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.text",
        name.into(),
    )
}

/// The owner of the schema named `name`.
pub fn schema_owner_by_name(name: &str) -> Role {
    owner_of_schema_named(name).unwrap_or_else(|| missing_schema(&quote_ident(name)))
}

fn missing_schema(which: &str) -> ! {
    raise(
        TenancyError::new(
            SqlState::InvalidSchemaName,
            format!("schema {which} does not exist"),
        )
        .hint("It was dropped while this call ran; SELECT * FROM tenancy.verify() reports registrations without a schema."),
    )
}

/// The role named `name`, if it exists.
pub fn role_by_name(name: &str) -> Option<Role> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a syscache lookup by name; missing_ok.
    let oid = unsafe { pg_sys::get_role_oid(c_name.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then(|| Role {
        oid,
        name: name.to_string(),
    })
}

/// The role with this OID, if it exists.
pub fn role_by_oid(oid: pg_sys::Oid) -> Option<Role> {
    role_where(
        "SELECT r.oid, r.rolname::pg_catalog.text FROM pg_catalog.pg_roles r \
         WHERE r.oid OPERATOR(pg_catalog.=) $1",
        oid.into(),
    )
}

/// Whether `role` has the privileges of `of` (`pg_has_role(role, of, 'USAGE')`: a superuser, the
/// role itself, or a member that inherits its rights).
pub fn has_privileges_of(role: pg_sys::Oid, of: pg_sys::Oid) -> bool {
    // SAFETY: what pg_has_role(role, of, 'USAGE') checks (roles' membership cache).
    unsafe { pg_sys::has_privs_of_role(role, of) }
}

/// The author of a migration as a role name (`None`: the extension's owner, author of the
/// embedded set), and whether it has the privileges of `owner`. The name is `None` when the
/// registering role no longer exists.
pub fn author_may_act_as(author: Option<&str>, owner: pg_sys::Oid) -> (Option<String>, bool) {
    let role = match author {
        Some(a) => role_by_name(a),
        None => get_one::<pg_sys::Oid>(
            "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_tenancy'",
            &[],
        )
        .and_then(role_by_oid),
    };
    match role {
        Some(r) => {
            let ok = has_privileges_of(r.oid, owner);
            (Some(r.name), ok)
        }
        None => (None, false),
    }
}

/// Rows of (object, text) of a query with one OID parameter.
fn rows_for_oid(query: &str, oid: pg_sys::Oid) -> Vec<(String, String)> {
    Spi::connect(|c| {
        c.select(query, None, &[oid.into()])
            .or_raise()
            .map(|r| {
                (
                    r.get::<String>(1).or_raise().unwrap_or_default(),
                    r.get::<String>(2).or_raise().unwrap_or_default(),
                )
            })
            .collect()
    })
}

/// What in the schema PostgreSQL keeps as text and resolves by name each time it runs: bodies of
/// functions and procedures that are not SQL-standard (`BEGIN ATOMIC`, `RETURN …`), every
/// function's `SET search_path`, and the bodies of functions elsewhere that triggers on the
/// schema's tables call. As (object, text).
const SOURCE_TEXTS: &str = "\
SELECT pg_catalog.format('function %I.%I(%s): its body', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)), p.prosrc
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
 WHERE p.pronamespace OPERATOR(pg_catalog.=) $1 AND p.prosqlbody IS NULL
   AND NOT l.lanname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ('{internal,c}'::pg_catalog.text[])
UNION ALL
SELECT pg_catalog.format('function %I.%I(%s): SET %s', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), s.setting),
       pg_catalog.substr(s.setting, 13)
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
  CROSS JOIN LATERAL pg_catalog.unnest(p.proconfig) AS s(setting)
 WHERE p.pronamespace OPERATOR(pg_catalog.=) $1 AND s.setting OPERATOR(pg_catalog.~~) 'search\\_path=%'
UNION ALL
SELECT pg_catalog.format('function %I.%I(%s), called by trigger %I on %I.%I: its body', pn.nspname, p.proname,
                         pg_catalog.pg_get_function_identity_arguments(p.oid), t.tgname, n.nspname, c.relname),
       p.prosrc
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) t.tgfoid
  JOIN pg_catalog.pg_namespace pn ON pn.oid OPERATOR(pg_catalog.=) p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
 WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 AND p.pronamespace OPERATOR(pg_catalog.<>) $1
   AND NOT t.tgisinternal AND p.prosqlbody IS NULL
   AND NOT l.lanname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ('{internal,c}'::pg_catalog.text[])";

/// What in the schema PostgreSQL keeps parsed, with OIDs that follow a rename, deparsed: views,
/// column defaults and generation expressions, check constraints (tables and domains), policies,
/// triggers (their `WHEN` and arguments), rules, SQL-standard function bodies. Only their string
/// literals can name a schema by text. As (object, text).
const PARSED_TEXTS: &str = "\
SELECT pg_catalog.format('%s %I.%I', CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, n.nspname, c.relname),
       pg_catalog.pg_get_viewdef(c.oid)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{v,m}'::pg_catalog.\"char\"[])
UNION ALL
SELECT pg_catalog.format('%s of column %I.%I.%I', CASE a.attgenerated WHEN 's' THEN 'generation expression' ELSE 'default' END,
                         n.nspname, c.relname, a.attname),
       pg_catalog.pg_get_expr(d.adbin, d.adrelid)
  FROM pg_catalog.pg_attrdef d
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.adrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.adrelid AND a.attnum OPERATOR(pg_catalog.=) d.adnum
 WHERE c.relnamespace OPERATOR(pg_catalog.=) $1
UNION ALL
SELECT pg_catalog.format('check constraint %I on %s', co.conname,
           COALESCE((SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
                       JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                      WHERE c.oid OPERATOR(pg_catalog.=) co.conrelid),
                    (SELECT pg_catalog.format('domain %I.%I', n.nspname, ty.typname) FROM pg_catalog.pg_type ty
                       JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) ty.typnamespace
                      WHERE ty.oid OPERATOR(pg_catalog.=) co.contypid), '?')),
       pg_catalog.pg_get_constraintdef(co.oid)
  FROM pg_catalog.pg_constraint co
 WHERE co.connamespace OPERATOR(pg_catalog.=) $1 AND co.contype OPERATOR(pg_catalog.=) 'c'
UNION ALL
SELECT pg_catalog.format('policy %I on %I.%I', p.polname, n.nspname, c.relname),
       pg_catalog.concat_ws(' ', pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))
  FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.polrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.relnamespace OPERATOR(pg_catalog.=) $1
UNION ALL
SELECT pg_catalog.format('trigger %I on %I.%I', t.tgname, n.nspname, c.relname), pg_catalog.pg_get_triggerdef(t.oid)
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 AND NOT t.tgisinternal
UNION ALL
SELECT pg_catalog.format('rule %I on %I.%I', r.rulename, n.nspname, c.relname), pg_catalog.pg_get_ruledef(r.oid)
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.ev_class
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 AND r.rulename OPERATOR(pg_catalog.<>) '_RETURN'
UNION ALL
SELECT pg_catalog.format('function %I.%I(%s): its body', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)),
       pg_catalog.pg_get_function_sqlbody(p.oid)
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
 WHERE p.pronamespace OPERATOR(pg_catalog.=) $1 AND p.prosqlbody IS NOT NULL";

/// The objects in schema `oid` (named `name`) that refer to it by its name as text rather than by
/// OID, so that after a rename they would follow the name to whatever schema carries it next
/// (issue 13). Each is described as `<object>: <where>`, in a stable order.
pub fn objects_naming_schema(oid: pg_sys::Oid, name: &str) -> Vec<String> {
    use crate::rules::sqltext::{names_schema, Stored};
    let mut found: Vec<String> = rows_for_oid(SOURCE_TEXTS, oid)
        .into_iter()
        .filter(|(_, text)| names_schema(text, name, Stored::Source))
        .chain(
            rows_for_oid(PARSED_TEXTS, oid)
                .into_iter()
                .filter(|(_, text)| names_schema(text, name, Stored::Parsed)),
        )
        .map(|(what, _)| what)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The relations `DROP SCHEMA … CASCADE` of schema `schema` locks `ACCESS EXCLUSIVE`, in OID order,
/// each with whether it lies in that schema (docs/concurrency.md, "Dropping tenants"):
///
/// - every object the cascade reaches, followed through `pg_depend` from the schema: its
///   relations, and relations elsewhere that depend on them (a view reading a tenant table);
/// - the relation of each trigger, rule, policy, constraint, column default and statistics object
///   it removes: a tenant's foreign key to a shared table has triggers *on the shared table*,
///   and removing them locks it (measured: `public.plans` for the shipped migrations);
/// - the partitioned parent of a partition it drops.
///
/// Over-approximating costs only a longer wait; a relation missed here is found by the `DROP`
/// itself, which then fails its attempt at once instead of waiting (see `lifecycle::drop`).
pub fn drop_lock_set(schema: pg_sys::Oid) -> Vec<(pg_sys::Oid, bool)> {
    Spi::connect(|c| {
        c.select(
            "WITH RECURSIVE doomed(classid, objid) AS ( \
                 SELECT d.classid, d.objid FROM pg_catalog.pg_depend d \
                 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass \
                   AND d.refobjid OPERATOR(pg_catalog.=) $1 \
               UNION \
                 SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, doomed \
                 WHERE d.refclassid OPERATOR(pg_catalog.=) doomed.classid AND d.refobjid OPERATOR(pg_catalog.=) doomed.objid \
             ), rels(rel) AS ( \
                 SELECT doomed.objid FROM doomed WHERE doomed.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
               UNION SELECT t.tgrelid FROM pg_catalog.pg_trigger t, doomed \
                 WHERE doomed.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass AND t.oid OPERATOR(pg_catalog.=) doomed.objid \
               UNION SELECT k.conrelid FROM pg_catalog.pg_constraint k, doomed \
                 WHERE doomed.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass AND k.oid OPERATOR(pg_catalog.=) doomed.objid \
               UNION SELECT a.adrelid FROM pg_catalog.pg_attrdef a, doomed \
                 WHERE doomed.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND a.oid OPERATOR(pg_catalog.=) doomed.objid \
               UNION SELECT r.ev_class FROM pg_catalog.pg_rewrite r, doomed \
                 WHERE doomed.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid OPERATOR(pg_catalog.=) doomed.objid \
               UNION SELECT p.polrelid FROM pg_catalog.pg_policy p, doomed \
                 WHERE doomed.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass AND p.oid OPERATOR(pg_catalog.=) doomed.objid \
               UNION SELECT s.stxrelid FROM pg_catalog.pg_statistic_ext s, doomed \
                 WHERE doomed.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass AND s.oid OPERATOR(pg_catalog.=) doomed.objid \
             ), locked(rel) AS ( \
                 SELECT rels.rel FROM rels \
               UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i, pg_catalog.pg_class c, rels \
                 WHERE c.oid OPERATOR(pg_catalog.=) rels.rel AND c.relispartition AND i.inhrelid OPERATOR(pg_catalog.=) c.oid \
             ) \
             SELECT c.oid, c.relnamespace OPERATOR(pg_catalog.=) $1 FROM pg_catalog.pg_class c, locked \
             WHERE c.oid OPERATOR(pg_catalog.=) locked.rel ORDER BY c.oid",
            None,
            &[schema.into()],
        )
        .or_raise()
        .filter_map(|r| {
            let oid = r.get::<pg_sys::Oid>(1).or_raise()?;
            Some((oid, r.get::<bool>(2).or_raise().unwrap_or(false)))
        })
        .collect()
    })
}

/// A relation's schema-qualified, quoted name, or `relation with OID n` once it is gone.
pub fn relation_name(oid: pg_sys::Oid) -> String {
    get_one::<String>(
        "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[oid.into()],
    )
    .unwrap_or_else(|| format!("relation with OID {}", oid.to_u32()))
}

/// Objects outside schema `nsp` that `DROP SCHEMA … CASCADE` would drop with it: those with a
/// normal dependency on a relation, type or routine of the schema (or one of its columns) and
/// placed elsewhere (a view or rule, a constraint, trigger, default or policy of a table, a
/// routine or type of another schema; a view as itself, not as its `_RETURN` rule). Internal and automatic dependencies (the triggers
/// PostgreSQL puts on a referenced shared table for a tenant's foreign key) go with their owner
/// and are not listed. As `pg_describe_object` names them.
pub fn outside_dependents(nsp: pg_sys::Oid) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            "WITH inside AS ( \
                 SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid AS classid, c.oid AS objid FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 \
                 UNION ALL SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, t.oid FROM pg_catalog.pg_type t WHERE t.typnamespace OPERATOR(pg_catalog.=) $1 \
                 UNION ALL SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid, p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) $1), \
             dep AS ( \
                 SELECT DISTINCT d.classid, d.objid, d.objsubid FROM pg_catalog.pg_depend d \
                 JOIN inside i ON d.refclassid OPERATOR(pg_catalog.=) i.classid AND d.refobjid OPERATOR(pg_catalog.=) i.objid \
                 WHERE d.deptype OPERATOR(pg_catalog.=) 'n'), \
             placed AS ( \
                 SELECT dep.classid, dep.objid, dep.objsubid, CASE dep.classid \
                   WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN (SELECT x.relnamespace FROM pg_catalog.pg_class x WHERE x.oid OPERATOR(pg_catalog.=) dep.objid) \
                   WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT x.relnamespace FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class x ON x.oid OPERATOR(pg_catalog.=) r.ev_class WHERE r.oid OPERATOR(pg_catalog.=) dep.objid) \
                   WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN (SELECT coalesce(x.relnamespace, k.connamespace) FROM pg_catalog.pg_constraint k LEFT JOIN pg_catalog.pg_class x ON x.oid OPERATOR(pg_catalog.=) k.conrelid WHERE k.oid OPERATOR(pg_catalog.=) dep.objid) \
                   WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT x.relnamespace FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class x ON x.oid OPERATOR(pg_catalog.=) g.tgrelid WHERE g.oid OPERATOR(pg_catalog.=) dep.objid) \
                   WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT x.relnamespace FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_class x ON x.oid OPERATOR(pg_catalog.=) a.adrelid WHERE a.oid OPERATOR(pg_catalog.=) dep.objid) \
                   WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT x.relnamespace FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class x ON x.oid OPERATOR(pg_catalog.=) p.polrelid WHERE p.oid OPERATOR(pg_catalog.=) dep.objid) \
                   WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN (SELECT x.pronamespace FROM pg_catalog.pg_proc x WHERE x.oid OPERATOR(pg_catalog.=) dep.objid) \
                   WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN (SELECT x.typnamespace FROM pg_catalog.pg_type x WHERE x.oid OPERATOR(pg_catalog.=) dep.objid) \
                 END AS nsp FROM dep) \
             SELECT DISTINCT pg_catalog.regexp_replace(pg_catalog.pg_describe_object(classid, objid, objsubid), '^rule _RETURN on ', '') \
             FROM placed WHERE nsp OPERATOR(pg_catalog.<>) $1 ORDER BY 1",
            None,
            &[nsp.into()],
        )
        .or_raise()
        .map(|r| r.get::<String>(1).or_raise().unwrap_or_default())
        .collect()
    })
}

/// Whether a key compared under the collations of `col` and `key_col` could match rows
/// differently: they differ and either is nondeterministic (deterministic collations compare
/// equality bytewise alike). Native RI compares under the key's collation; the shared reference's
/// lookups use each side's own.
pub fn collations_differ(
    tbl: pg_sys::Oid,
    col: &str,
    shared_tbl: pg_sys::Oid,
    key_col: &str,
) -> bool {
    get_one::<bool>(
        "SELECT a.attcollation OPERATOR(pg_catalog.<>) b.attcollation AND NOT ( \
                    coalesce((SELECT c.collisdeterministic FROM pg_catalog.pg_collation c WHERE c.oid OPERATOR(pg_catalog.=) a.attcollation), true) \
                AND coalesce((SELECT c.collisdeterministic FROM pg_catalog.pg_collation c WHERE c.oid OPERATOR(pg_catalog.=) b.attcollation), true)) \
         FROM pg_catalog.pg_attribute a, pg_catalog.pg_attribute b \
         WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name \
           AND b.attrelid OPERATOR(pg_catalog.=) $3 AND b.attname OPERATOR(pg_catalog.=) $4::pg_catalog.name",
        &[tbl.into(), col.into(), shared_tbl.into(), key_col.into()],
    )
    .unwrap_or(false)
}

/// A column's collation as SQL (`"C"`, `public.ci`), `"default"` when it has none.
pub fn column_collation(tbl: pg_sys::Oid, col: &str) -> String {
    get_one::<String>(
        "SELECT coalesce(nullif(a.attcollation, 0)::pg_catalog.regcollation::pg_catalog.text, '\"default\"') \
         FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name",
        &[tbl.into(), col.into()],
    )
    .unwrap_or_else(|| "\"default\"".into())
}
