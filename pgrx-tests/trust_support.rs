//! Shared by the trust-boundary tests (`trust`, `adversarial`, issue 12): roles, acting as them,
//! attempts that may fail, and the catalog checks that show whether a role gained a privilege.

use pgrx::prelude::*;

use crate::in_db::support::{lit, one, run, strings};

/// The role the tests run as (the cluster's bootstrap superuser, which installed the extension).
pub fn superuser() -> String {
    one::<String>("SELECT current_user::text").unwrap()
}

/// CREATE ROLE (cluster-wide, but the test's transaction rolls it back).
pub fn role(name: &str) {
    run(&format!("CREATE ROLE {name} NOLOGIN"));
}

/// CREATE on the test database: what creating a tenant schema needs.
pub fn grant_create_on_database(role: &str) {
    run(&format!(
        "GRANT CREATE ON DATABASE {} TO {role}",
        one::<String>("SELECT quote_ident(current_database())").unwrap()
    ));
}

/// `tenancy.grant_<level>(role)` for `provision`, `author` or `admin`. Before issue 12 only
/// `grant_admin` exists (and gave everything, table writes included); falling back to it keeps a
/// test failing on the escalation it is about on that code, not on the missing function. Once the
/// new grants exist the fallback is never taken (`grants_are_narrow` calls them directly).
pub fn grant(role: &str, level: &str) {
    let f = format!("grant_{level}");
    let exists = one::<bool>(&format!(
        "SELECT EXISTS (SELECT FROM pg_proc WHERE pronamespace = 'tenancy'::regnamespace AND proname = {})",
        lit(&f)
    ))
    .unwrap();
    let f = if exists { f } else { "grant_admin".into() };
    run(&format!("SELECT tenancy.{f}({})", lit(role)));
}

/// A role that provisions (or authors) tenants the way the docs say: the grant, CREATE on the
/// database, and REFERENCES on public.plans (the shipped 0005 migration references it, and a
/// tenant's owner needs the privileges its migrations use).
pub fn app_role(name: &str, level: &str) {
    role(name);
    grant(name, level);
    grant_create_on_database(name);
    run(&format!("GRANT REFERENCES ON public.plans TO {name}"));
}

/// Runs `sql` as `role` (SET LOCAL ROLE … RESET ROLE).
pub fn as_role(role: &str, sql: &str) {
    run(&format!("SET LOCAL ROLE {role}"));
    run(sql);
    run("RESET ROLE");
}

/// Runs `sql` in a sub-transaction; `None` when it succeeded, otherwise its SQLSTATE and message.
pub fn attempt(sql: &str) -> Option<(String, String)> {
    Spi::get_one_with_args::<Vec<Option<String>>>("SELECT pg_temp.try_sql($1)", &[sql.into()])
        .unwrap()
        .map(|r| {
            (
                r[0].clone().unwrap_or_default(),
                r[1].clone().unwrap_or_default(),
            )
        })
}

/// Like [`attempt`], as `role`.
pub fn attempt_as(role: &str, sql: &str) -> Option<(String, String)> {
    run(&format!("SET LOCAL ROLE {role}"));
    let r = attempt(sql);
    run("RESET ROLE");
    r
}

pub fn rolsuper(role: &str) -> bool {
    one::<bool>(&format!(
        "SELECT rolsuper FROM pg_roles WHERE rolname = {}",
        lit(role)
    ))
    .unwrap()
}

pub fn owner_of(relation: &str) -> String {
    one::<String>(&format!(
        "SELECT relowner::regrole::text FROM pg_class WHERE oid = {}::regclass",
        lit(relation)
    ))
    .unwrap_or_else(|| panic!("no relation {relation}"))
}

/// What a role may do that the checks care about: its attributes, its memberships, the default
/// privileges of roles other than itself that name it, and every privilege on `canary`.
pub fn privileges_of(role: &str, canary: &str) -> Vec<String> {
    let r = lit(role);
    let mut out = strings(&format!(
        "SELECT a.attr FROM pg_roles, LATERAL (VALUES ('SUPERUSER', rolsuper), ('CREATEROLE', rolcreaterole),
                 ('CREATEDB', rolcreatedb), ('BYPASSRLS', rolbypassrls), ('REPLICATION', rolreplication)) AS a(attr, has)
         WHERE rolname = {r} AND a.has ORDER BY 1"
    ));
    out.extend(strings(&format!(
        "SELECT 'member of ' || roleid::regrole::text FROM pg_auth_members WHERE member = {r}::regrole ORDER BY 1"
    )));
    out.extend(strings(&format!(
        "SELECT 'default privileges of ' || defaclrole::regrole::text || ': ' || defaclacl::text
         FROM pg_default_acl WHERE defaclrole <> {r}::regrole AND defaclacl::text LIKE '%' || {r} || '=%' ORDER BY 1"
    )));
    out.extend(strings(&format!(
        "SELECT 'on {canary}: ' || p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) AS p
         WHERE has_table_privilege({r}, {}, p) ORDER BY 1",
        lit(canary)
    )));
    out
}
