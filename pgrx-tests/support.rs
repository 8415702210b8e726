//! Shared by the in-database tests: SPI shorthands, the app's public table the shipped migrations
//! reference, and catching an error to assert its SQLSTATE, message and hint.

use pgrx::prelude::*;

use crate::rules::names::quote_literal;

pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn one<T: FromDatum + IntoDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn count(sql: &str) -> i64 {
    one::<i64>(&format!("SELECT count(*) FROM ({sql}) AS q")).unwrap()
}

pub fn strings(sql: &str) -> Vec<String> {
    Spi::connect(|c| {
        c.select(sql, None, &[])
            .unwrap()
            .map(|r| r.get::<String>(1).unwrap().unwrap_or_default())
            .collect()
    })
}

/// The app's own public migration, which the shipped tenant migrations reference.
pub fn setup() {
    run("CREATE TABLE IF NOT EXISTS public.plans (id bigint PRIMARY KEY, label text)");
    run("INSERT INTO public.plans VALUES (1, 'free') ON CONFLICT DO NOTHING");
    run(
        r#"CREATE OR REPLACE FUNCTION pg_temp.try_sql(q text) RETURNS text[] LANGUAGE plpgsql AS $f$
        DECLARE s text; m text; h text; d text;
        BEGIN
            EXECUTE q;
            RETURN NULL;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT,
                                    h = PG_EXCEPTION_HINT, d = PG_EXCEPTION_DETAIL;
            RETURN ARRAY[s, m, h, d];
        END $f$"#,
    );
}

/// An ordinary (non-superuser) role to own tenants, with what the shipped migrations need on
/// shared objects (REFERENCES on public.plans). Tenants owned by a superuser are reported by
/// `verify()`; tests that expect a clean `verify()` give their tenants this owner.
pub fn tenant_owner() -> &'static str {
    run("DO $$ BEGIN CREATE ROLE tenancy_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    run("GRANT SELECT, REFERENCES ON public.plans TO tenancy_owner");
    "tenancy_owner"
}

#[derive(Debug)]
pub struct Failure {
    pub state: String,
    pub message: String,
    pub hint: String,
    pub detail: String,
}

/// Runs `sql` expecting an error with SQLSTATE `state` (PostgreSQL's own errors included).
pub fn fails_bare(sql: &str, state: &str) -> Failure {
    let r: Vec<Option<String>> =
        Spi::get_one_with_args::<Vec<Option<String>>>("SELECT pg_temp.try_sql($1)", &[sql.into()])
            .unwrap()
            .unwrap_or_else(|| panic!("expected {state} from {sql}, but it succeeded"));
    let f = Failure {
        state: r[0].clone().unwrap_or_default(),
        message: r[1].clone().unwrap_or_default(),
        hint: r[2].clone().unwrap_or_default(),
        detail: r[3].clone().unwrap_or_default(),
    };
    assert_eq!(f.state, state, "{sql}: {}", f.message);
    f
}

/// Like [`fails_bare`], and the error must carry a hint: every error pg_tenancy raises does.
pub fn fails(sql: &str, state: &str) -> Failure {
    let f = fails_bare(sql, state);
    assert!(
        !f.hint.is_empty(),
        "{sql}: error without a hint: {}",
        f.message
    );
    f
}

pub fn lit(s: &str) -> String {
    quote_literal(s)
}

pub fn schema_exists(name: &str) -> bool {
    count(&format!(
        "SELECT 1 FROM pg_namespace WHERE nspname = {}",
        lit(name)
    )) == 1
}

pub fn ledger(name: &str) -> Vec<String> {
    strings(&format!(
        "SELECT version FROM tenancy.ledger WHERE schema_name = {} ORDER BY version::numeric",
        lit(name)
    ))
}

pub fn all_versions() -> Vec<String> {
    strings("SELECT version FROM tenancy.migrations")
}
