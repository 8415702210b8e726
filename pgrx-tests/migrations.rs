//! Tenant migrations: registered migrations, drift and repair, `@tenant@`, failures, foreign keys.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{
        count, fails, ledger, lit, one, run, schema_exists, setup, strings,
    };
    use pgrx::prelude::*;

    #[pg_test]
    fn registered_migrations_and_the_view() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        assert_eq!(
            one::<String>("SELECT tenancy.add_migration('0006', 'add_invoices', 'CREATE TABLE invoices (id bigint PRIMARY KEY, amount numeric NOT NULL)')").unwrap(),
            "0006_add_invoices"
        );
        assert_eq!(
            strings("SELECT version || ':' || source FROM tenancy.migrations"),
            vec![
                "0001:embedded",
                "0002:embedded",
                "0003:embedded",
                "0004:embedded",
                "0005:embedded",
                "0006:registered",
                "20261126000000:embedded",
                "20261127000000:embedded"
            ]
        );
        // Idempotent with the same text; a clash is refused; embedded versions too.
        run("SELECT tenancy.add_migration('0006', 'add_invoices', 'CREATE TABLE invoices (id bigint PRIMARY KEY, amount numeric NOT NULL)')");
        let f = fails(
            "SELECT tenancy.add_migration('6', 'other', 'SELECT 1')",
            "42710",
        );
        assert!(f.message.contains("0006_add_invoices"), "{}", f.message);
        fails(
            "SELECT tenancy.add_migration('0001', 'users', 'SELECT 1')",
            "42710",
        );
        fails(
            "SELECT tenancy.add_migration('v7', 'x', 'SELECT 1')",
            "22023",
        );
        fails(
            "SELECT tenancy.add_migration('0007', 'x', '-- nothing')",
            "22023",
        );
        fails(
            "SELECT tenancy.add_migration('0007', 'x', 'SELECT ''unterminated')",
            "42601",
        );
        let f = fails(
            "SELECT tenancy.add_migration('0007', 'idx', 'CREATE TABLE t (x int); CREATE INDEX CONCURRENTLY t_x ON t (x)')",
            "25001",
        );
        assert!(
            f.message.contains("0007_idx") && f.message.contains("statement 2"),
            "{}",
            f.message
        );
        assert_eq!(count("SELECT 1 FROM tenancy.registered_migrations"), 1);
        assert_eq!(
            strings("SELECT version FROM tenancy.migrate_tenant('org_1')"),
            vec!["0006"]
        );
        assert_eq!(count("SELECT 1 FROM org_1.invoices"), 0);
        // New tenants get registered migrations too.
        run("SELECT tenancy.create_tenant('org_2')");
        assert_eq!(ledger("org_2").len(), 8);
    }

    #[pg_test]
    fn drift_is_refused_until_repair() {
        setup();
        run("SELECT tenancy.add_migration('0006', 'x', 'CREATE TABLE x (id int)')");
        run("SELECT tenancy.create_tenant('org_1')");
        let old =
            one::<String>("SELECT checksum FROM tenancy.ledger WHERE version = '0006'").unwrap();
        // Someone edits the migration's text after it was applied.
        let new_sql = "CREATE TABLE x (id bigint)";
        let new = crate::rules::migration_set::checksum(new_sql);
        run(&format!(
            "UPDATE tenancy.registered_migrations SET sql = {}, checksum = {} WHERE version = '0006'",
            lit(new_sql),
            lit(&new)
        ));
        run("SELECT tenancy.add_migration('0007', 'y', 'CREATE TABLE y (id int)')");
        let f = fails("SELECT * FROM tenancy.migrate_tenant('org_1')", "55000");
        assert!(
            f.message.contains("\"org_1\"") && f.message.contains("0006_x"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains(&old) && f.message.contains(&new),
            "{}",
            f.message
        );
        assert!(f.hint.contains("tenancy.repair('0006')"), "{}", f.hint);
        assert_eq!(one::<i64>("SELECT tenancy.repair('0006')"), Some(1));
        assert_eq!(one::<i64>("SELECT tenancy.repair('6')"), Some(0));
        assert_eq!(
            strings("SELECT version FROM tenancy.migrate_tenant('org_1')"),
            vec!["0007"]
        );
        fails("SELECT tenancy.repair('0099')", "42704");
    }

    #[pg_test]
    fn tenant_placeholder_and_search_path_restored() {
        setup();
        run("SET LOCAL search_path = public, pg_catalog");
        run("SELECT tenancy.add_migration('0006', 'fn', $m$CREATE FUNCTION user_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM @tenant@.users $$; COMMENT ON FUNCTION user_count() IS '@tenant@ users'$m$)");
        run("SELECT tenancy.create_tenant('Org \"1\"')");
        assert_eq!(
            one::<String>("SELECT current_setting('search_path')").unwrap(),
            "public, pg_catalog"
        );
        let def = one::<String>(
            "SELECT pg_get_functiondef('\"Org \"\"1\"\"\".user_count()'::regprocedure)",
        )
        .unwrap();
        assert!(def.contains("FROM \"Org \"\"1\"\"\".users"), "{def}");
        assert_eq!(
            one::<String>("SELECT obj_description('\"Org \"\"1\"\"\".user_count()'::regprocedure)")
                .unwrap(),
            "\"Org \"\"1\"\"\" users"
        );
        assert_eq!(one::<i64>("SELECT \"Org \"\"1\"\"\".user_count()"), Some(0));
        run("SELECT tenancy.create_tenant('org_2')");
        assert_eq!(
            one::<String>("SELECT current_setting('search_path')").unwrap(),
            "public, pg_catalog"
        );
    }

    #[pg_test]
    fn failing_migration_names_tenant_migration_statement_and_leaves_prior_version() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        run("SELECT tenancy.add_migration('0006', 'broken', 'CREATE TABLE ok_table (x int);\nCREATE TABLE users (x int)')");
        let f = fails("SELECT * FROM tenancy.migrate_tenant('org_1')", "42P07");
        assert!(
            f.message.contains("tenant \"org_1\"") && f.message.contains("0006_broken"),
            "{}",
            f.message
        );
        assert!(
            f.detail.contains("statement 2: CREATE TABLE users (x int)"),
            "{}",
            f.detail
        );
        assert_eq!(ledger("org_1").len(), 7);
        assert_eq!(
            count("SELECT 1 FROM pg_tables WHERE schemaname = 'org_1' AND tablename = 'ok_table'"),
            0
        );
        // create_tenant with a failing migration leaves no schema and no registration.
        let f = fails("SELECT tenancy.create_tenant('org_2')", "42P07");
        assert!(f.message.contains("\"org_2\""), "{}", f.message);
        assert!(!schema_exists("org_2"));
        assert_eq!(
            count("SELECT 1 FROM tenancy.tenants WHERE schema_name = 'org_2'"),
            0
        );
        fails(
            "SELECT * FROM tenancy.migrate_tenant('org_1', '0099')",
            "42704",
        );
    }

    #[pg_test]
    fn foreign_keys_point_at_the_right_schema() {
        setup();
        // A same-named table in public must not capture the tenant's references.
        run("CREATE TABLE public.users (id bigint PRIMARY KEY)");
        run("SELECT tenancy.create_tenant('a')");
        run("SELECT tenancy.create_tenant('b')");
        for t in ["a", "b"] {
            let targets = strings(&format!(
                "SELECT c.conrelid::regclass::text || ' -> ' || c.confrelid::regclass::text
                 FROM pg_constraint c WHERE c.contype = 'f' AND c.connamespace = '{t}'::regnamespace
                 ORDER BY 1"
            ));
            assert_eq!(
                targets,
                vec![
                    format!("{t}.comments -> {t}.tasks"),
                    format!("{t}.comments -> {t}.users"),
                    format!("{t}.projects -> {t}.users"),
                    format!("{t}.subscription -> plans"),
                    format!("{t}.tasks -> {t}.projects"),
                    format!("{t}.tasks -> {t}.users"),
                ],
                "tenant {t}"
            );
        }
        assert_eq!(
            one::<String>("SELECT confrelid::regclass::text FROM pg_constraint WHERE conrelid = 'a.subscription'::regclass AND contype = 'f'"),
            Some("plans".into())
        );
        assert_eq!(
            one::<String>("SELECT n.nspname::text FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid JOIN pg_namespace n ON n.oid = r.relnamespace WHERE c.conrelid = 'a.subscription'::regclass AND c.contype = 'f'"),
            Some("public".into())
        );
    }
}
