//! Renames never leave references to the old name (issue 13, case 3).
//!
//! The case: `org_1` is renamed to `org_100` and a new tenant takes the name `org_1`. Whatever in
//! `org_100` still names its schema by text (a function body written with `@tenant@`, a function's
//! `SET search_path`) would now read and write the new `org_1`. `rename_tenant` refuses such a
//! rename with the objects listed (55000); the shipped set names no schema by text after
//! `20261126000000_open_task_count_atomic`, so its tenants can be renamed and the old name reused.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, ledger, one, run, schema_exists, setup};
    use pgrx::prelude::*;

    /// Rows in each tenant: `n` open tasks in one project owned by one user.
    fn seed(tenant: &str, n: i64) -> i64 {
        run(&format!(
            "INSERT INTO {tenant}.users (email) VALUES ('{tenant}@example.com')"
        ));
        let project = one::<i64>(&format!(
            "INSERT INTO {tenant}.projects (name, owner_id) SELECT 'p', id FROM {tenant}.users RETURNING id"
        ))
        .unwrap();
        run(&format!(
            "INSERT INTO {tenant}.tasks (project_id, title) SELECT {project}, 't' || g FROM generate_series(1, {n}) g"
        ));
        project
    }

    #[pg_test]
    fn shipped_set_rename_then_reuse_keeps_each_tenant_on_its_own_rows() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        let p_old = seed("org_1", 3);
        run("SELECT tenancy.rename_tenant('org_1', 'org_100')");
        run("SELECT tenancy.create_tenant('org_1')");
        let p_new = seed("org_1", 7);
        // Each tenant's function counts its own rows, whatever the caller's search_path.
        for path in ["public", "org_1, public", "org_100, public"] {
            run(&format!("SET LOCAL search_path = {path}"));
            assert_eq!(
                one::<i64>(&format!("SELECT org_100.open_task_count({p_old})")),
                Some(3),
                "org_100 under search_path {path}"
            );
            assert_eq!(
                one::<i64>(&format!("SELECT org_1.open_task_count({p_new})")),
                Some(7),
                "org_1 under search_path {path}"
            );
        }
        run("RESET search_path");
        // Nothing in either tenant names the other schema.
        for t in ["org_1", "org_100"] {
            assert_eq!(
                count(&format!(
                    "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = '{t}' AND p.prosqlbody IS NULL"
                )),
                0,
                "{t}: every shipped function has a SQL-standard body"
            );
        }
        assert_eq!(ledger("org_100"), ledger("org_1"));
        // And the renamed tenant can be renamed again, and back.
        run("SELECT tenancy.rename_tenant('org_100', 'org_200')");
        assert_eq!(
            one::<i64>(&format!("SELECT org_200.open_task_count({p_old})")),
            Some(3)
        );
    }

    /// The issue's own reproduction: a registered migration with `@tenant@` in a SQL function body
    /// and in a trigger function, plus a function pinned with `SET search_path`.
    fn register_text_references() {
        run("SELECT tenancy.add_migration('0100', 'accounts', $m$
            CREATE TABLE accounts (id int PRIMARY KEY);
            CREATE TABLE audit (account_id int);
            CREATE FUNCTION account_count() RETURNS bigint LANGUAGE sql STABLE
                AS $$ SELECT count(*) FROM @tenant@.accounts $$;
            CREATE FUNCTION audit_account() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO @tenant@.audit VALUES (NEW.id); RETURN NEW; END $$;
            CREATE TRIGGER accounts_audit AFTER INSERT ON accounts
                FOR EACH ROW EXECUTE FUNCTION audit_account();
            CREATE FUNCTION pinned() RETURNS bigint LANGUAGE sql STABLE
                SET search_path = @tenant@, public
                AS $$ SELECT count(*) FROM accounts $$;
        $m$)");
    }

    #[pg_test]
    fn rename_refuses_objects_that_name_the_schema_by_text() {
        setup();
        register_text_references();
        run("SELECT tenancy.create_tenant('org_1')");
        run("INSERT INTO org_1.accounts VALUES (1), (2)");
        let f = fails("SELECT tenancy.rename_tenant('org_1', 'org_100')", "55000");
        assert!(
            f.message.contains("\"org_1\"") && f.message.contains("3"),
            "{}",
            f.message
        );
        for what in [
            "function org_1.account_count()",
            "function org_1.audit_account()",
            "function org_1.pinned()",
            "SET search_path",
        ] {
            assert!(f.detail.contains(what), "{what} in {}", f.detail);
        }
        assert!(f.hint.contains("BEGIN ATOMIC"), "{}", f.hint);
        // Nothing happened: the tenant keeps its name and the old name is not free.
        assert!(schema_exists("org_1") && !schema_exists("org_100"));
        assert_eq!(count("SELECT 1 FROM org_1.audit"), 2);
        fails("SELECT tenancy.create_tenant('org_1')", "42P06");
    }

    #[pg_test]
    fn rename_through_a_managed_row_names_the_table_and_the_objects() {
        setup();
        register_text_references();
        run("CREATE TABLE public.orgs (id int PRIMARY KEY)");
        run("SELECT tenancy.manage_tenant('public.orgs', ARRAY['org_', ':id'])");
        run("INSERT INTO public.orgs VALUES (1)");
        let f = fails("UPDATE public.orgs SET id = 100 WHERE id = 1", "55000");
        assert!(
            f.message.contains("orgs") && f.message.contains("cannot rename tenant \"org_1\""),
            "{}",
            f.message
        );
        assert!(
            f.detail.contains("function org_1.account_count()"),
            "{}",
            f.detail
        );
        assert!(schema_exists("org_1") && !schema_exists("org_100"));
    }

    #[pg_test]
    fn rename_allows_what_follows_the_schema() {
        setup();
        // Parsed objects (views, defaults, checks, policies, triggers, SQL-standard bodies) store
        // OIDs, and bodies that name nothing but their own tables resolve through the caller's
        // search_path: none of these hold the rename back.
        run("SELECT tenancy.add_migration('0100', 'parsed', $m$
            CREATE TABLE accounts (id int PRIMARY KEY CHECK (id > 0), n int DEFAULT 0);
            CREATE VIEW big_accounts AS SELECT id FROM accounts WHERE n > 10;
            ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
            CREATE POLICY own ON accounts USING (id IN (SELECT id FROM big_accounts));
            CREATE FUNCTION account_count() RETURNS bigint LANGUAGE sql STABLE
                BEGIN ATOMIC SELECT count(*) FROM accounts; END;
            CREATE FUNCTION loose_count() RETURNS bigint LANGUAGE sql STABLE
                AS $$ SELECT count(*) FROM accounts $$;
            CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN EXECUTE format('UPDATE %I.accounts SET n = n + 1 WHERE false', TG_TABLE_SCHEMA); RETURN NEW; END $$;
            CREATE TRIGGER accounts_touch AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION touch();
        $m$)");
        run("SELECT tenancy.create_tenant('org_1')");
        run("SELECT tenancy.rename_tenant('org_1', 'org_100')");
        run("SELECT tenancy.create_tenant('org_1')");
        run("INSERT INTO org_100.accounts VALUES (1)");
        run("INSERT INTO org_1.accounts VALUES (1), (2)");
        assert_eq!(one::<i64>("SELECT org_100.account_count()"), Some(1));
        assert_eq!(one::<i64>("SELECT org_1.account_count()"), Some(2));
    }

    #[pg_test]
    fn literals_naming_the_schema_in_parsed_objects_are_refused_too() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        // A default and a view that look a table up by name at run time: text, not an OID.
        run("ALTER TABLE org_1.users ADD COLUMN home text DEFAULT 'org_1.users'");
        run("CREATE VIEW org_1.v AS SELECT to_regclass('\"org_1\".tasks') AS t");
        let f = fails("SELECT tenancy.rename_tenant('org_1', 'org_100')", "55000");
        assert!(
            f.detail.contains("default of column org_1.users.home"),
            "{}",
            f.detail
        );
        assert!(f.detail.contains("view org_1.v"), "{}", f.detail);
        // Quoted differently or in another case, a name is another schema: not a reference.
        run("ALTER TABLE org_1.users ALTER COLUMN home SET DEFAULT 'ORG_1x'");
        run("DROP VIEW org_1.v");
        run("CREATE VIEW org_1.v AS SELECT to_regclass('\"ORG_1\".tasks') AS t");
        run("SELECT tenancy.rename_tenant('org_1', 'org_100')");
    }

    #[pg_test]
    fn tenants_from_before_the_atomic_migration_become_renameable_by_migrating() {
        setup();
        // A tenant created before 20261126000000 existed: 0005's body names the schema.
        run("CREATE SCHEMA org_1");
        run("SELECT tenancy.register_tenant('org_1')");
        run("SELECT * FROM tenancy.migrate_tenant('org_1', '0005')");
        let f = fails("SELECT tenancy.rename_tenant('org_1', 'org_100')", "55000");
        assert!(
            f.detail
                .contains("function org_1.open_task_count(p_project bigint): its body"),
            "{}",
            f.detail
        );
        assert!(
            f.message.contains("1 object in its schema"),
            "{}",
            f.message
        );
        run("SELECT * FROM tenancy.migrate_tenant('org_1')");
        run("SELECT tenancy.rename_tenant('org_1', 'org_100')");
        // A tenant renamed before renames were checked still reads the tenant that took its old
        // name: its 0005 body names "org_1". Migrating binds it to its own tasks.
        run("SELECT tenancy.create_tenant('org_1')");
        run("CREATE SCHEMA org_3");
        run("SELECT tenancy.register_tenant('org_3')");
        run("SELECT * FROM tenancy.migrate_tenant('org_3', '0005')");
        run(
            r#"CREATE OR REPLACE FUNCTION org_3.open_task_count(p_project bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
        SELECT count(*) FROM "org_1".tasks
        WHERE project_id = p_project AND done_at IS NULL
    $$"#,
        );
        let p1 = seed("org_1", 2);
        let p3 = seed("org_3", 4);
        assert_eq!(p1, p3, "both tenants' first project");
        assert_eq!(
            one::<i64>(&format!("SELECT org_3.open_task_count({p3})")),
            Some(2)
        );
        run("SELECT * FROM tenancy.migrate_tenant('org_3')");
        assert_eq!(
            one::<i64>(&format!("SELECT org_3.open_task_count({p3})")),
            Some(4)
        );
        // A function the tenant changed after 0005 is not 0005's any more: left as it is.
        run("CREATE SCHEMA org_2");
        run("SELECT tenancy.register_tenant('org_2')");
        run("SELECT * FROM tenancy.migrate_tenant('org_2', '0005')");
        run("CREATE OR REPLACE FUNCTION org_2.open_task_count(p_project bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT 42::bigint $$");
        run("SELECT * FROM tenancy.migrate_tenant('org_2')");
        assert_eq!(one::<i64>("SELECT org_2.open_task_count(1)"), Some(42));
        assert_eq!(
            count("SELECT 1 FROM pg_proc WHERE proname = 'open_task_count' AND pronamespace = 'org_2'::regnamespace AND prosqlbody IS NULL"),
            1
        );
    }
}
