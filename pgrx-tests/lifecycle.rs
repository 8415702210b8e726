//! Tenant lifecycle: create, register, rename, detach, drop, set_tenant.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{
        all_versions, count, fails, ledger, lit, one, run, schema_exists, setup, strings,
    };
    use pgrx::prelude::*;

    #[pg_test]
    fn create_tenant_creates_registers_and_migrates() {
        setup();
        assert_eq!(
            one::<String>("SELECT tenancy.create_tenant('org_1')::text").unwrap(),
            "org_1"
        );
        assert!(schema_exists("org_1"));
        assert_eq!(ledger("org_1"), all_versions());
        assert_eq!(
            all_versions(),
            vec![
                "0001",
                "0002",
                "0003",
                "0004",
                "0005",
                "20261126000000",
                "20261127000000"
            ]
        );
        // Checksums are the sha256 of the migration text.
        assert_eq!(
            count(
                "SELECT 1 FROM tenancy.ledger l JOIN tenancy.migrations m USING (version)
                 WHERE l.schema_name = 'org_1' AND l.checksum = m.checksum AND length(l.checksum) = 64"
            ),
            7
        );
        assert_eq!(
            one::<String>("SELECT checksum FROM tenancy.migrations WHERE version = '0001'"),
            Some(crate::rules::migration_set::checksum(
                crate::db::known_set::embedded()[0].sql.as_str()
            ))
        );
        for t in ["users", "projects", "tasks", "comments", "subscription"] {
            assert_eq!(
                count(&format!(
                    "SELECT 1 FROM pg_tables WHERE schemaname = 'org_1' AND tablename = '{t}'"
                )),
                1,
                "{t}"
            );
        }
        assert_eq!(
            one::<String>("SELECT pg_typeof(tenancy.create_tenant('org_2'))::text").unwrap(),
            "name"
        );
    }

    #[pg_test]
    fn all_tenants_lists_in_name_order() {
        setup();
        for t in ["org_b", "org_a", "Org_C"] {
            run(&format!("SELECT tenancy.create_tenant({})", lit(t)));
        }
        assert_eq!(
            strings("SELECT t::text FROM tenancy.all_tenants() AS t"),
            vec!["Org_C", "org_a", "org_b"]
        );
    }

    #[pg_test]
    fn create_tenant_refuses_existing_schema() {
        setup();
        run("CREATE SCHEMA legacy");
        let f = fails("SELECT tenancy.create_tenant('legacy')", "42P06");
        assert!(f.hint.contains("register_tenant"), "{}", f.hint);
        run("SELECT tenancy.create_tenant('org_1')");
        let f = fails("SELECT tenancy.create_tenant('org_1')", "42P06");
        assert!(
            f.message.contains("tenant \"org_1\" already exists"),
            "{}",
            f.message
        );
    }

    #[pg_test]
    fn register_tenant_with_baseline_then_migrate() {
        setup();
        run("CREATE SCHEMA legacy");
        run("CREATE TABLE legacy.users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, full_name text NOT NULL DEFAULT '', created_at timestamptz NOT NULL DEFAULT now())");
        run("CREATE TABLE legacy.projects (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, owner_id bigint NOT NULL REFERENCES legacy.users (id), archived boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now())");
        assert_eq!(
            one::<String>("SELECT tenancy.register_tenant('legacy', '0002')::text").unwrap(),
            "legacy"
        );
        assert_eq!(ledger("legacy"), vec!["0001", "0002"]);
        assert_eq!(
            count("SELECT 1 FROM tenancy.ledger WHERE schema_name = 'legacy' AND baselined"),
            2
        );
        assert_eq!(
            strings("SELECT version FROM tenancy.migrate_tenant('legacy')"),
            vec!["0003", "0004", "0005", "20261126000000", "20261127000000"]
        );
        assert_eq!(count("SELECT * FROM tenancy.migrate_tenant('legacy')"), 0);
        // Without a baseline nothing is recorded and nothing runs until migrate_tenant.
        run("CREATE SCHEMA legacy2");
        run("SELECT tenancy.register_tenant('legacy2')");
        assert!(ledger("legacy2").is_empty());
        assert_eq!(
            strings("SELECT version FROM tenancy.migrate_tenant('legacy2', '3')"),
            vec!["0001", "0002", "0003"]
        );
        assert_eq!(
            strings("SELECT version FROM tenancy.migrate_tenant('legacy2')"),
            vec!["0004", "0005", "20261126000000", "20261127000000"]
        );
    }

    #[pg_test]
    fn register_tenant_refusals() {
        setup();
        fails("SELECT tenancy.register_tenant('nope')", "3F000");
        run("CREATE SCHEMA legacy");
        fails("SELECT tenancy.register_tenant('legacy', '0099')", "42704");
        fails("SELECT tenancy.register_tenant('legacy', 'v1')", "22023");
        assert_eq!(count("SELECT 1 FROM tenancy.tenants"), 0);
        run("SELECT tenancy.register_tenant('legacy')");
        fails("SELECT tenancy.register_tenant('legacy')", "42710");
        fails("SELECT tenancy.register_tenant('public')", "42602");
    }

    #[pg_test]
    fn rename_tenant_moves_schema_registry_and_ledger() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        let oid = one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'org_1'");
        assert_eq!(
            one::<String>("SELECT tenancy.rename_tenant('org_1', 'org_10')::text").unwrap(),
            "org_10"
        );
        assert!(!schema_exists("org_1"));
        assert_eq!(
            one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'org_10'"),
            oid
        );
        assert_eq!(ledger("org_10"), all_versions());
        assert!(ledger("org_1").is_empty());
        assert_eq!(
            strings("SELECT t::text FROM tenancy.all_tenants() t"),
            vec!["org_10"]
        );
        // A case-only rename of the same tenant is allowed.
        run("SELECT tenancy.rename_tenant('org_10', 'ORG_10')");
        assert_eq!(ledger("ORG_10").len(), 7);
        // The target exists.
        run("CREATE SCHEMA taken");
        fails("SELECT tenancy.rename_tenant('ORG_10', 'taken')", "42P06");
        fails("SELECT tenancy.rename_tenant('nope', 'x')", "42704");
        fails("SELECT tenancy.rename_tenant('ORG_10', 'pg_x')", "42602");
        assert!(schema_exists("ORG_10"));
    }

    #[pg_test]
    fn detach_keeps_schema_and_data() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        run("INSERT INTO org_1.users (email) VALUES ('a@example.com')");
        run("SELECT tenancy.detach_tenant('org_1')");
        assert!(schema_exists("org_1"));
        assert_eq!(count("SELECT 1 FROM org_1.users"), 1);
        assert_eq!(count("SELECT * FROM tenancy.all_tenants()"), 0);
        assert!(ledger("org_1").is_empty());
        fails("SELECT tenancy.detach_tenant('org_1')", "42704");
        // It can be adopted again.
        run("SELECT tenancy.register_tenant('org_1', '20261127000000')");
        assert_eq!(count("SELECT * FROM tenancy.migrate_tenant('org_1')"), 0);
    }

    #[pg_test]
    fn drop_tenant_drops_only_registered_schemas_matched_by_oid() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        run("SELECT tenancy.drop_tenant('org_1')");
        assert!(!schema_exists("org_1"));
        assert_eq!(count("SELECT 1 FROM tenancy.tenants"), 0);
        assert_eq!(count("SELECT 1 FROM tenancy.ledger"), 0);
        // Not a tenant: refused, nothing dropped.
        run("CREATE SCHEMA plain; CREATE TABLE plain.t (x int)");
        fails("SELECT tenancy.drop_tenant('plain')", "42704");
        assert!(schema_exists("plain"));
        fails("SELECT tenancy.drop_tenant('nope')", "3F000");
        // A schema that carries a tenant's name but is not the tenant's schema (OID differs).
        run("SELECT tenancy.create_tenant('org_2')");
        run("ALTER SCHEMA org_2 RENAME TO org_2_moved");
        run("CREATE SCHEMA org_2");
        let f = fails("SELECT tenancy.drop_tenant('org_2')", "55000");
        assert!(f.message.contains("replaced"), "{}", f.message);
        assert!(schema_exists("org_2") && schema_exists("org_2_moved"));
        // Migrating such a tenant is refused too.
        run("DROP SCHEMA org_2");
        let f = fails("SELECT * FROM tenancy.migrate_tenant('org_2')", "55000");
        assert!(
            f.message.contains("renamed to \"org_2_moved\""),
            "{}",
            f.message
        );
    }

    #[pg_test]
    fn set_tenant_sets_search_path_locally_and_refuses_unknown() {
        setup();
        run("SELECT tenancy.create_tenant('org 1')");
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()::text"), None);
        run("SELECT tenancy.set_tenant('org 1')");
        assert_eq!(
            one::<String>("SELECT current_setting('search_path')").unwrap(),
            "\"org 1\", \"public\""
        );
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()::text").unwrap(),
            "org 1"
        );
        // Unqualified names now resolve inside the tenant.
        run("INSERT INTO users (email) VALUES ('x@example.com')");
        assert_eq!(count("SELECT 1 FROM \"org 1\".users"), 1);
        // SET LOCAL by default: the setting is transaction-scoped.
        assert_eq!(
            one::<String>("SELECT setting FROM pg_settings WHERE name = 'search_path'").unwrap(),
            "\"org 1\", \"public\""
        );
        let f = fails("SELECT tenancy.set_tenant('org_2')", "42704");
        assert!(f.message.contains("\"org_2\""));
        // Refused: search_path and current tenant unchanged.
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()::text").unwrap(),
            "org 1"
        );
        fails("SELECT tenancy.set_tenant(NULL)", "22004");
    }

    #[pg_test]
    fn set_tenant_ignores_objects_planted_in_the_callers_search_path() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        run("CREATE TABLE public.planted_calls (fn text)");
        run("CREATE FUNCTION public.planted_eq(name, text) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.planted_calls VALUES ('='); RETURN true; END $$");
        run("CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = text, FUNCTION = public.planted_eq)");
        run("CREATE FUNCTION public.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.planted_calls VALUES ('set_config'); RETURN ''; END $$");
        run("CREATE TYPE public.text AS (x int)");
        // The caller puts public before pg_catalog: unqualified names would find the planted ones.
        run("SET LOCAL search_path = public, pg_catalog");
        run("SELECT tenancy.set_tenant('org_1')");
        // The planted = answers true for any name; the real one finds no such tenant.
        fails("SELECT tenancy.set_tenant('org_2')", "42704");
        assert_eq!(
            one::<String>("SELECT pg_catalog.current_setting('search_path')").unwrap(),
            "\"org_1\", \"public\""
        );
        assert_eq!(count("SELECT 1 FROM public.planted_calls"), 0);
    }
}
