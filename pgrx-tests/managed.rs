//! Managed tables: rows that provision, rename and retire tenants.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{
        all_versions, count, fails, fails_bare, ledger, lit, one, run, schema_exists, setup,
        strings,
    };
    use pgrx::prelude::*;

    fn organizations(on_update: bool, on_delete: &str) {
        run("CREATE TABLE public.organizations (id bigint PRIMARY KEY, name text, region text)");
        run(&format!(
            "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_update => {on_update}, on_delete => {})",
            lit(on_delete)
        ));
    }

    fn tenants() -> Vec<String> {
        strings("SELECT t::text FROM tenancy.all_tenants() AS t")
    }

    #[pg_test]
    fn manage_tenant_validates_the_template() {
        setup();
        run("CREATE TABLE public.organizations (id bigint PRIMARY KEY, name text)");
        let f = fails(
            "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':nope'])",
            "42703",
        );
        assert!(
            f.message.contains("\"nope\"") && f.hint.contains("\"id\""),
            "{} / {}",
            f.message,
            f.hint
        );
        fails(
            "SELECT tenancy.manage_tenant('organizations', ARRAY[]::text[])",
            "22023",
        );
        fails(
            "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', 'x'])",
            "22023",
        );
        fails(
            "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', NULL])",
            "22023",
        );
        fails("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'purge')", "22023");
        fails(
            "SELECT tenancy.manage_tenant(NULL, ARRAY['org_', ':id'])",
            "22004",
        );
        run("CREATE VIEW public.org_view AS SELECT * FROM public.organizations");
        fails(
            "SELECT tenancy.manage_tenant('org_view', ARRAY['org_', ':id'])",
            "42P01",
        );
        fails("SELECT tenancy.unmanage_tenant('organizations')", "42704");
        assert_eq!(count("SELECT 1 FROM tenancy.managed_tables"), 0);
        assert_eq!(
            count("SELECT 1 FROM pg_trigger WHERE tgrelid = 'organizations'::regclass"),
            0
        );
        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'drop')");
        assert_eq!(
            strings("SELECT table_name::text || ' ' || template::text || ' ' || on_create || on_update || ' ' || on_delete FROM tenancy.managed_tables"),
            vec!["organizations {org_,:id} truetrue drop"]
        );
        assert_eq!(
            strings("SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'organizations'::regclass ORDER BY 1"),
            vec!["tenancy_provision", "tenancy_rename", "tenancy_retire", "tenancy_truncate"]
        );
        // Managing again replaces the settings and triggers.
        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_update => false)");
        assert_eq!(
            strings("SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'organizations'::regclass ORDER BY 1"),
            vec!["tenancy_provision"]
        );
        run("SELECT tenancy.unmanage_tenant('organizations')");
        assert_eq!(
            count("SELECT 1 FROM pg_trigger WHERE tgrelid = 'organizations'::regclass"),
            0
        );
        assert_eq!(count("SELECT 1 FROM tenancy.managed_tables"), 0);
    }

    #[pg_test]
    fn insert_provisions_and_migrates_in_the_rows_transaction() {
        setup();
        organizations(true, "keep");
        run("INSERT INTO organizations (id, name) VALUES (10, 'Acme')");
        assert!(schema_exists("org_10"));
        assert_eq!(ledger("org_10"), all_versions());
        run("INSERT INTO organizations (id) VALUES (11), (12)");
        assert_eq!(tenants(), vec!["org_10", "org_11", "org_12"]);
    }

    #[pg_test]
    fn multi_column_templates_with_hostile_values_work_end_to_end() {
        setup();
        run("CREATE TABLE public.shops (id int PRIMARY KEY, region text NOT NULL)");
        run("SELECT tenancy.manage_tenant('shops', ARRAY['t_', ':region', '_', ':id'], on_delete => 'drop')");
        let region = "eu 'wést\"; drop schema public; --";
        run(&format!("INSERT INTO shops VALUES (1, {})", lit(region)));
        let name = format!("t_{region}_1");
        assert!(schema_exists(&name), "{name}");
        assert_eq!(ledger(&name).len(), 7);
        run("UPDATE shops SET region = 'ünïcode' WHERE id = 1");
        assert!(!schema_exists(&name) && schema_exists("t_ünïcode_1"));
        assert_eq!(ledger("t_ünïcode_1").len(), 7);
        run("DELETE FROM shops");
        assert!(!schema_exists("t_ünïcode_1"));
        assert!(tenants().is_empty());
        assert_eq!(
            count("SELECT 1 FROM pg_namespace WHERE nspname = 'public'"),
            1
        );
    }

    /// Nothing of a failed INSERT is left: no schema, no registration, no ledger rows, no row.
    fn nothing_left(name: &str) {
        assert!(!schema_exists(name), "{name}");
        assert_eq!(
            count(&format!(
                "SELECT 1 FROM tenancy.tenants WHERE schema_name = {}",
                lit(name)
            )),
            0
        );
        assert_eq!(
            count(&format!(
                "SELECT 1 FROM tenancy.ledger WHERE schema_name = {}",
                lit(name)
            )),
            0
        );
    }

    #[pg_test]
    fn failed_inserts_leave_nothing_behind() {
        setup();
        organizations(true, "keep");
        // A computed name that breaks the name rules.
        run("CREATE TABLE public.bad (id int, label text)");
        run("SELECT tenancy.manage_tenant('bad', ARRAY['pg_', ':id'])");
        let f = fails("INSERT INTO bad VALUES (1)", "42602");
        assert!(
            f.message.contains("bad: cannot provision tenant \"pg_1\""),
            "{}",
            f.message
        );
        nothing_left("pg_1");
        // A NULL template column.
        run("SELECT tenancy.manage_tenant('bad', ARRAY['x_', ':label'])");
        let f = fails("INSERT INTO bad VALUES (1, NULL)", "22004");
        assert!(
            f.message.contains("\"label\"") && f.message.contains("bad"),
            "{}",
            f.message
        );
        assert_eq!(count("SELECT 1 FROM bad"), 0);
        // A schema that exists and is not a tenant.
        run("CREATE SCHEMA org_20");
        let f = fails("INSERT INTO organizations (id) VALUES (20)", "42P06");
        assert!(f.message.contains("\"org_20\""), "{}", f.message);
        assert_eq!(count("SELECT 1 FROM tenancy.tenants"), 0);
        // A failing migration.
        run("SELECT tenancy.add_migration('0006', 'broken', 'CREATE TABLE users (x int)')");
        let f = fails("INSERT INTO organizations (id) VALUES (21), (22)", "42P07");
        assert!(
            f.message
                .contains("organizations: cannot provision tenant \"org_21\"")
                && f.message.contains("0006_broken"),
            "{}",
            f.message
        );
        nothing_left("org_21");
        nothing_left("org_22");
        assert_eq!(count("SELECT 1 FROM organizations"), 0);
    }

    #[pg_test]
    fn update_renames_only_when_the_name_changes() {
        setup();
        organizations(true, "keep");
        run("INSERT INTO organizations (id, name) VALUES (10, 'Acme'), (11, 'Globex')");
        let oid = one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'org_10'");
        run("UPDATE organizations SET id = 100 WHERE id = 10");
        assert!(!schema_exists("org_10"));
        assert_eq!(
            one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'org_100'"),
            oid
        );
        assert_eq!(ledger("org_100").len(), 7);
        // The target exists: the UPDATE fails and nothing moves.
        fails_bare("UPDATE organizations SET id = 11 WHERE id = 100", "23505");
        run("CREATE SCHEMA org_200");
        let f = fails("UPDATE organizations SET id = 200 WHERE id = 100", "42P06");
        assert!(
            f.message
                .contains("organizations: cannot rename tenant \"org_100\""),
            "{}",
            f.message
        );
        assert!(schema_exists("org_100"));
        // Updates that do not change the name do no DDL at all: the ledger is untouched, and with
        // the registration removed behind pg_tenancy's back (so any lifecycle call would fail)
        // they still succeed.
        let ledger_of = || {
            strings("SELECT version || ' ' || applied_at::text FROM tenancy.ledger WHERE schema_name = 'org_100' ORDER BY 1")
        };
        let ledger_before = ledger_of();
        run("UPDATE organizations SET name = 'Acme 1' WHERE id = 100");
        run("UPDATE organizations SET id = id WHERE id = 100");
        assert_eq!(ledger_of(), ledger_before);
        run("DELETE FROM tenancy.tenants WHERE schema_name = 'org_100'");
        run("UPDATE organizations SET name = 'Acme 2' WHERE id = 100");
        run("UPDATE organizations SET id = id WHERE id = 100");
        assert_eq!(
            one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'org_100'"),
            oid
        );
        // The rename trigger only fires for the template's columns.
        assert_eq!(
            one::<String>("SELECT tgattr::text FROM pg_trigger WHERE tgname = 'tenancy_rename' AND tgrelid = 'organizations'::regclass"),
            Some("1".into())
        );
    }

    #[pg_test]
    fn on_update_false_leaves_the_schema_alone() {
        setup();
        organizations(false, "keep");
        run("INSERT INTO organizations (id) VALUES (10)");
        run("UPDATE organizations SET id = 11");
        assert!(schema_exists("org_10") && !schema_exists("org_11"));
    }

    #[pg_test]
    fn delete_policies_and_truncate() {
        setup();
        organizations(true, "keep");
        run("INSERT INTO organizations (id) VALUES (1), (2)");
        run("DELETE FROM organizations WHERE id = 1");
        assert_eq!(tenants(), vec!["org_1", "org_2"]);
        run("TRUNCATE organizations");
        assert_eq!(tenants(), vec!["org_1", "org_2"]);

        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'detach')");
        run("INSERT INTO organizations (id) VALUES (3)");
        run("DELETE FROM organizations WHERE id = 3");
        assert!(schema_exists("org_3"));
        assert_eq!(tenants(), vec!["org_1", "org_2"]);
        run("INSERT INTO organizations (id) VALUES (4)");
        run("TRUNCATE organizations");
        assert!(schema_exists("org_4"));

        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'drop')");
        run("INSERT INTO organizations (id) VALUES (5), (6)");
        run("DELETE FROM organizations WHERE id = 5");
        assert!(!schema_exists("org_5"));
        let f = fails("TRUNCATE organizations", "55000");
        assert!(
            f.message.contains("organizations") && f.hint.contains("DELETE"),
            "{} / {}",
            f.message,
            f.hint
        );
        assert!(schema_exists("org_6"));
        assert_eq!(count("SELECT 1 FROM organizations"), 1);
    }

    #[pg_test]
    fn bulk_insert_of_200_rows_provisions_200_tenants() {
        setup();
        organizations(true, "keep");
        run("INSERT INTO organizations (id) SELECT g FROM generate_series(1, 200) AS g");
        assert_eq!(count("SELECT * FROM tenancy.all_tenants()"), 200);
        assert_eq!(count("SELECT 1 FROM tenancy.ledger"), 1400);
    }

    #[pg_test]
    fn bulk_copy_of_200_rows_provisions_200_tenants() {
        setup();
        organizations(true, "keep");
        run("COPY organizations (id) FROM PROGRAM 'seq 1001 1200'");
        assert_eq!(count("SELECT * FROM tenancy.all_tenants()"), 200);
        assert!(schema_exists("org_1001") && schema_exists("org_1200"));
    }
}
