//! Hygiene of the installed objects: pinned search_path, dumped catalog tables, privileges, SQLSTATEs.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, fails_bare, lit, one, run, setup, strings};
    use pgrx::prelude::*;

    #[pg_test]
    fn every_function_pins_its_search_path() {
        let unpinned = strings(
            "SELECT p.proname::text FROM pg_proc p
             WHERE p.pronamespace = 'tenancy'::regnamespace
               AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog, pg_temp%', false)
             ORDER BY 1",
        );
        // set_tenant must not carry a SET clause (it would undo its own SET LOCAL), and
        // migrate_all cannot (it COMMITs); their bodies are fully qualified instead.
        assert_eq!(unpinned, vec!["migrate_all", "set_tenant"]);
    }

    #[pg_test]
    fn catalog_tables_are_dumped() {
        assert_eq!(
            strings("SELECT unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'pg_tenancy' ORDER BY 1"),
            vec![
                "tenancy.attribute_tables",
                "tenancy.attribute_tenants",
                "tenancy.detached_tenants",
                "tenancy.ledger",
                "tenancy.managed_table_settings",
                "tenancy.registered_migrations",
                "tenancy.shared_presence",
                "tenancy.shared_references",
                "tenancy.shared_table_settings",
                "tenancy.tenants"
            ]
        );
    }

    #[pg_test]
    fn public_cannot_run_ddl_functions() {
        setup();
        let ddl = strings(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace
             AND p.proname NOT IN ('all_tenants', 'current_tenant', 'set_tenant', '_embedded_checksums', '_describe_schema', '_tenantize', '_schema_ddl',
                                 '_managed_ddl',
                                 -- shared references: each checks the caller's rights itself (sql/privileges.sql)
                                 'share_table', '_share_table', 'reference_shared', '_reference_shared',
                                 '_shared_ref_check', '_shared_guard', '_shared_truncate', '_shared_ddl',
                                 '_verify_shared',
                                 -- snapshots: run as a schema's owner, whoever that is (sql/privileges.sql)
                                 '_snapshot_extras', '_snapshot_sequence', '_snapshot_fingerprint') ORDER BY 1",
        );
        assert!(ddl.len() >= 12, "{ddl:?}");
        run("CREATE ROLE tenancy_nobody");
        for f in &ddl {
            assert_eq!(
                one::<bool>(&format!(
                    "SELECT has_function_privilege('tenancy_nobody', {}, 'EXECUTE')",
                    lit(f)
                )),
                Some(false),
                "{f}"
            );
        }
        run("SET LOCAL ROLE tenancy_nobody");
        // PostgreSQL's own privilege errors (no EXECUTE, no INSERT).
        fails_bare("SELECT tenancy.create_tenant('org_x')", "42501");
        fails_bare(
            "SELECT tenancy.add_migration('9', 'x', 'select 1')",
            "42501",
        );
        fails_bare("INSERT INTO tenancy.tenants VALUES ('x', 'x', 1)", "42501");
        assert_eq!(count("SELECT * FROM tenancy.all_tenants()"), 0);
        run("RESET ROLE");
    }

    #[pg_test]
    fn grant_admin_needs_database_create_for_provisioning() {
        setup();
        run("CREATE ROLE tenancy_admin");
        run("SELECT tenancy.grant_admin('tenancy_admin')");
        run("REVOKE CREATE ON DATABASE pgrx_tests FROM PUBLIC");
        run("GRANT USAGE ON SCHEMA public TO tenancy_admin; GRANT REFERENCES ON public.plans TO tenancy_admin");
        run("SET LOCAL ROLE tenancy_admin");
        let f = fails("SELECT tenancy.create_tenant('org_x')", "42501");
        assert!(f.hint.contains("GRANT CREATE ON DATABASE"), "{}", f.hint);
        run("RESET ROLE");
        run(&format!(
            "GRANT CREATE ON DATABASE {} TO tenancy_admin",
            one::<String>("SELECT quote_ident(current_database())").unwrap()
        ));
        run("SET LOCAL ROLE tenancy_admin");
        run("SELECT tenancy.create_tenant('org_x')");
        run("RESET ROLE");
        // Tenant objects belong to the role that provisioned them.
        assert_eq!(
            one::<String>(
                "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'org_x'"
            )
            .unwrap(),
            "tenancy_admin"
        );
        assert_eq!(
            one::<String>(
                "SELECT relowner::regrole::text FROM pg_class WHERE oid = 'org_x.users'::regclass"
            )
            .unwrap(),
            "tenancy_admin"
        );
    }

    #[pg_test]
    fn user_errors_never_use_xx000() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        for (sql, state) in [
            ("SELECT tenancy.create_tenant(NULL)", "22004"),
            ("SELECT tenancy.rename_tenant(NULL, 'x')", "22004"),
            ("SELECT tenancy.rename_tenant('org_1', NULL)", "22004"),
            ("SELECT tenancy.detach_tenant(NULL)", "22004"),
            ("SELECT tenancy.drop_tenant(NULL)", "22004"),
            ("SELECT * FROM tenancy.migrate_tenant(NULL)", "22004"),
            ("SELECT * FROM tenancy.migrate_tenant('nope')", "42704"),
            (
                "SELECT * FROM tenancy.migrate_tenant('org_1', 'x')",
                "22023",
            ),
            (
                "SELECT tenancy.add_migration(NULL, 'x', 'select 1')",
                "22004",
            ),
            ("SELECT tenancy.add_migration('1', '', 'select 1')", "22023"),
            ("SELECT tenancy.add_migration('1', 'x', NULL)", "22004"),
            ("SELECT tenancy.add_migration('1', 'x', 'COMMIT')", "25001"),
            ("SELECT tenancy.repair(NULL)", "22004"),
            ("SELECT tenancy.repair('abc')", "22023"),
            ("SELECT tenancy.grant_admin(NULL)", "22004"),
            ("SELECT tenancy.register_tenant(NULL)", "22004"),
            ("SELECT tenancy._fleet_launch(NULL, 1)", "22004"),
            ("SELECT tenancy._fleet_launch(-1, 1)", "42704"),
        ] {
            fails(sql, state);
        }
    }

    /// One NULL rule: 22004 naming the function and the parameter, for parameters with a default
    /// too, where NULL used to become XX000, an empty result or a silent default.
    #[pg_test]
    fn null_arguments_fail_naming_the_parameter() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        // migrate_all's tenant list: NULL means every tenant; a NULL inside it or an empty list is
        // refused instead of quietly migrating nothing.
        let f = fails(
            "SELECT tenancy._fleet_begin(1, ARRAY[NULL]::name[], false, '5s')",
            "22004",
        );
        assert_eq!(
            f.message,
            "tenancy.migrate_all: tenants must not contain NULL"
        );
        fails("SELECT tenancy._fleet_begin(1, '{}', false, '5s')", "22023");
        for (sql, function, param) in [
            (
                "SELECT tenancy.set_tenant('org_1', NULL)",
                "set_tenant",
                "is_local",
            ),
            (
                "SELECT * FROM tenancy.reconcile(NULL)",
                "reconcile",
                "dry_run",
            ),
            ("SELECT * FROM tenancy.verify(NULL)", "verify", "deep"),
            (
                "SELECT * FROM tenancy.compare_schemas(NULL, 'org_1')",
                "compare_schemas",
                "a",
            ),
            (
                "SELECT * FROM tenancy.compare_schemas('org_1', NULL)",
                "compare_schemas",
                "b",
            ),
            (
                "SELECT tenancy.create_template(NULL)",
                "create_template",
                "template_schema",
            ),
            (
                "SELECT tenancy.generate_migration(NULL)",
                "generate_migration",
                "template_schema",
            ),
            (
                "SELECT tenancy.describe_schema(NULL)",
                "describe_schema",
                "schema_name",
            ),
            (
                "SELECT * FROM tenancy._split_statements(NULL, 'x')",
                "_split_statements",
                "sql",
            ),
            (
                "SELECT tenancy._fleet_begin(NULL, NULL, false, '5s')",
                "migrate_all",
                "jobs",
            ),
            (
                "SELECT tenancy._fleet_begin(1, NULL, false, NULL)",
                "migrate_all",
                "lock_timeout",
            ),
            (
                "SELECT tenancy.manage_tenant(NULL, ARRAY['org_', ':id'])",
                "manage_tenant",
                "tbl",
            ),
            (
                "SELECT tenancy.add_attribute_tenant(NULL)",
                "add_attribute_tenant",
                "tenant",
            ),
        ] {
            let f = fails(sql, "22004");
            assert_eq!(
                f.message,
                format!("tenancy.{function}: {param} must not be NULL"),
                "{sql}"
            );
            assert!(
                f.hint
                    .starts_with(&format!("Pass a value for {param}, e.g. ")),
                "{sql}: {}",
                f.hint
            );
        }
    }
}
