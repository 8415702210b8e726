//! In-database tests (`cargo pgrx test`): each runs inside one transaction that is rolled back.
//! Errors are caught in a PL/pgSQL sub-transaction (`pg_temp.try_sql`) so a test can assert the
//! SQLSTATE, message and hint, and then check that nothing was left behind.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::names::{quote_ident, quote_literal};

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn one<T: FromDatum + IntoDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn count(sql: &str) -> i64 {
        one::<i64>(&format!("SELECT count(*) FROM ({sql}) AS q")).unwrap()
    }

    fn strings(sql: &str) -> Vec<String> {
        Spi::connect(|c| {
            c.select(sql, None, &[])
                .unwrap()
                .map(|r| r.get::<String>(1).unwrap().unwrap_or_default())
                .collect()
        })
    }

    /// The app's own public migration, which the shipped tenant migrations reference.
    fn setup() {
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

    struct Failure {
        state: String,
        message: String,
        hint: String,
        detail: String,
    }

    /// Runs `sql` expecting an error with SQLSTATE `state` (PostgreSQL's own errors included).
    fn fails_bare(sql: &str, state: &str) -> Failure {
        let r: Vec<Option<String>> = Spi::get_one_with_args::<Vec<Option<String>>>(
            "SELECT pg_temp.try_sql($1)",
            &[sql.into()],
        )
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
    fn fails(sql: &str, state: &str) -> Failure {
        let f = fails_bare(sql, state);
        assert!(
            !f.hint.is_empty(),
            "{sql}: error without a hint: {}",
            f.message
        );
        f
    }

    fn lit(s: &str) -> String {
        quote_literal(s)
    }

    fn schema_exists(name: &str) -> bool {
        count(&format!(
            "SELECT 1 FROM pg_namespace WHERE nspname = {}",
            lit(name)
        )) == 1
    }

    fn ledger(name: &str) -> Vec<String> {
        strings(&format!(
            "SELECT version FROM tenancy.ledger WHERE schema_name = {} ORDER BY version::numeric",
            lit(name)
        ))
    }

    fn all_versions() -> Vec<String> {
        strings("SELECT version FROM tenancy.migrations")
    }

    // ---- lifecycle -------------------------------------------------------------------------

    #[pg_test]
    fn create_tenant_creates_registers_and_migrates() {
        setup();
        assert_eq!(
            one::<String>("SELECT tenancy.create_tenant('org_1')::text").unwrap(),
            "org_1"
        );
        assert!(schema_exists("org_1"));
        assert_eq!(ledger("org_1"), all_versions());
        assert_eq!(all_versions(), vec!["0001", "0002", "0003", "0004", "0005"]);
        // Checksums are the sha256 of the migration text.
        assert_eq!(
            count(
                "SELECT 1 FROM tenancy.ledger l JOIN tenancy.migrations m USING (version)
                 WHERE l.schema_name = 'org_1' AND l.checksum = m.checksum AND length(l.checksum) = 64"
            ),
            5
        );
        assert_eq!(
            one::<String>("SELECT checksum FROM tenancy.migrations WHERE version = '0001'"),
            Some(crate::migration_set::checksum(
                crate::migrations::embedded()[0].sql.as_str()
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
            vec!["0003", "0004", "0005"]
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
            vec!["0004", "0005"]
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
        assert_eq!(ledger("ORG_10").len(), 5);
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
        run("SELECT tenancy.register_tenant('org_1', '0005')");
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

    // ---- names -----------------------------------------------------------------------------

    fn full_cycle(name: &str) {
        let public_before =
            one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'public'");
        let schemas_before = count("SELECT 1 FROM pg_namespace");
        run(&format!("SELECT tenancy.create_tenant({})", lit(name)));
        assert!(schema_exists(name), "{name}");
        assert_eq!(ledger(name).len(), 5);
        // The @tenant@ function works from anywhere.
        run(&format!(
            "INSERT INTO {}.users (email) VALUES ('u@example.com')",
            quote_ident(name)
        ));
        run(&format!(
            "INSERT INTO {q}.projects (name, owner_id) SELECT 'p', id FROM {q}.users",
            q = quote_ident(name)
        ));
        run(&format!(
            "INSERT INTO {q}.tasks (project_id, title) SELECT id, 't' FROM {q}.projects",
            q = quote_ident(name)
        ));
        assert_eq!(
            one::<i64>(&format!(
                "SELECT {}.open_task_count((SELECT id FROM {}.projects))",
                quote_ident(name),
                quote_ident(name)
            )),
            Some(1)
        );
        run(
            "SELECT tenancy.add_migration('0100', 'notes', 'CREATE TABLE notes (id int PRIMARY KEY, body text); CREATE VIEW @tenant@.note_count AS SELECT count(*) FROM @tenant@.notes')",
        );
        assert_eq!(
            strings(&format!(
                "SELECT version FROM tenancy.migrate_tenant({})",
                lit(name)
            )),
            vec!["0100"]
        );
        let renamed = format!("{name}2");
        let renamed = if renamed.len() > 63 {
            format!("x{}", &name[name.char_indices().nth(1).unwrap().0..])
        } else {
            renamed
        };
        run(&format!(
            "SELECT tenancy.rename_tenant({}, {})",
            lit(name),
            lit(&renamed)
        ));
        assert!(schema_exists(&renamed) && !schema_exists(name));
        assert_eq!(ledger(&renamed).len(), 6);
        run(&format!("SELECT tenancy.drop_tenant({})", lit(&renamed)));
        assert!(!schema_exists(&renamed));
        assert_eq!(
            one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'public'"),
            public_before
        );
        assert_eq!(count("SELECT 1 FROM pg_namespace"), schemas_before);
        assert_eq!(
            count("SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tablename = 'plans'"),
            1
        );
        run("DELETE FROM tenancy.registered_migrations");
    }

    #[pg_test]
    fn hostile_names_go_through_the_whole_lifecycle_unexecuted() {
        setup();
        full_cycle("a\"; drop schema public cascade; --");
        full_cycle("name with spaces");
        full_cycle("it's; select pg_sleep(10); $$ $x$");
        let multibyte = format!("{}x", "é".repeat(31));
        assert_eq!(multibyte.len(), 63);
        full_cycle(&multibyte);
    }

    #[pg_test]
    fn bad_names_are_refused_before_any_ddl() {
        setup();
        let schemas = count("SELECT 1 FROM pg_namespace");
        let f = fails(
            &format!("SELECT tenancy.create_tenant({})", lit(&"é".repeat(32))),
            "42622",
        );
        assert!(f.message.contains("64 bytes"), "{}", f.message);
        fails(
            &format!("SELECT tenancy.create_tenant({})", lit(&"a".repeat(64))),
            "42622",
        );
        fails("SELECT tenancy.create_tenant('pg_x')", "42602");
        fails("SELECT tenancy.create_tenant('public')", "42602");
        fails("SELECT tenancy.create_tenant('tenancy')", "42602");
        fails(
            "SELECT tenancy.create_tenant('information_schema')",
            "42602",
        );
        fails("SELECT tenancy.create_tenant('')", "42602");
        fails("SELECT tenancy.create_tenant(NULL)", "22004");
        run("SELECT tenancy.create_tenant('org_1')");
        let f = fails("SELECT tenancy.create_tenant('Org_1')", "42602");
        assert!(f.message.contains("\"org_1\""), "{}", f.message);
        fails("SELECT tenancy.register_tenant('ORG_1')", "3F000");
        run("CREATE SCHEMA \"ORG_1\"");
        fails("SELECT tenancy.register_tenant('ORG_1')", "42602");
        assert_eq!(count("SELECT 1 FROM pg_namespace"), schemas + 2);
        assert_eq!(count("SELECT 1 FROM tenancy.tenants"), 1);
    }

    // ---- migrations ------------------------------------------------------------------------

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
                "0006:registered"
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
        assert_eq!(ledger("org_2").len(), 6);
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
        let new = crate::migration_set::checksum(new_sql);
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
        assert_eq!(ledger("org_1").len(), 5);
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

    // ---- managed tables --------------------------------------------------------------------

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
        assert_eq!(ledger(&name).len(), 5);
        run("UPDATE shops SET region = 'ünïcode' WHERE id = 1");
        assert!(!schema_exists(&name) && schema_exists("t_ünïcode_1"));
        assert_eq!(ledger("t_ünïcode_1").len(), 5);
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
        assert_eq!(ledger("org_100").len(), 5);
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
        assert_eq!(count("SELECT 1 FROM tenancy.ledger"), 1000);
    }

    #[pg_test]
    fn bulk_copy_of_200_rows_provisions_200_tenants() {
        setup();
        organizations(true, "keep");
        run("COPY organizations (id) FROM PROGRAM 'seq 1001 1200'");
        assert_eq!(count("SELECT * FROM tenancy.all_tenants()"), 200);
        assert!(schema_exists("org_1001") && schema_exists("org_1200"));
    }

    // ---- fleet (the parts that run inside one transaction; tests/integration has the rest) --

    #[pg_test]
    fn migrate_all_refuses_a_transaction_block() {
        setup();
        let f = fails("CALL tenancy.migrate_all()", "25001");
        assert!(f.hint.contains("outside BEGIN"), "{}", f.hint);
    }

    #[pg_test]
    fn fleet_step_records_failures_and_status_shows_each_state() {
        setup();
        for t in ["a", "b", "c", "d"] {
            run(&format!("SELECT tenancy.create_tenant('{t}')"));
        }
        run("SELECT tenancy.add_migration('0006', 'x', 'CREATE TABLE x (id int)')");
        run("CREATE TABLE b.x (id int)"); // b will fail: x exists
        run("UPDATE tenancy.ledger SET checksum = 'edited' WHERE schema_name = 'd' AND version = '0001'");
        let run_id = one::<i64>("SELECT tenancy._fleet_begin(1, NULL, false, '5s')").unwrap();
        assert_eq!(
            strings(&format!("SELECT schema_name::text FROM tenancy.fleet_items WHERE run_id = {run_id} ORDER BY 1")),
            vec!["a", "b", "c", "d"]
        );
        while one::<bool>(&format!("SELECT tenancy._fleet_step({run_id})")).unwrap() {}
        assert_eq!(
            strings(&format!("SELECT schema_name || ':' || state FROM tenancy.fleet_items WHERE run_id = {run_id} ORDER BY 1")),
            vec!["a:done", "b:failed", "c:done", "d:failed"]
        );
        assert_eq!(
            strings("SELECT schema_name || ':' || state || ':' || pending FROM tenancy.status ORDER BY 1"),
            vec!["a:up_to_date:0", "b:failed:1", "c:up_to_date:0", "d:drifted:1"]
        );
        let err =
            one::<String>("SELECT last_error FROM tenancy.status WHERE schema_name = 'b'").unwrap();
        assert!(err.starts_with("42P07:") && err.contains("0006_x"), "{err}");
        assert_eq!(
            one::<String>("SELECT version FROM tenancy.status WHERE schema_name = 'a'").unwrap(),
            "0006"
        );
        assert_eq!(
            strings(&format!("SELECT migrated || '/' || failed || '/' || total FROM tenancy.fleet_runs WHERE run_id = {run_id}")),
            vec!["2/2/4"]
        );
        // Fixing the cause: a later successful migration clears the recorded failure.
        run("DROP TABLE b.x");
        run("SELECT * FROM tenancy.migrate_tenant('b')");
        assert_eq!(
            one::<String>("SELECT state FROM tenancy.status WHERE schema_name = 'b'").unwrap(),
            "up_to_date"
        );
        // A canary subset, and an unknown name in it.
        let canary =
            one::<i64>("SELECT tenancy._fleet_begin(1, ARRAY['a', 'd']::name[], false, '5s')")
                .unwrap();
        assert_eq!(
            count(&format!(
                "SELECT 1 FROM tenancy.fleet_items WHERE run_id = {canary}"
            )),
            1
        );
        fails(
            "SELECT tenancy._fleet_begin(1, ARRAY['a', 'zz']::name[], false, '5s')",
            "42704",
        );
        fails("SELECT tenancy._fleet_begin(0, NULL, false, '5s')", "22023");
        fails_bare(
            "SELECT tenancy._fleet_begin(1, NULL, false, 'soon')",
            "22023",
        );
    }

    #[pg_test]
    fn verify_reports_registry_drift() {
        setup();
        run("CREATE TABLE public.organizations (id bigint PRIMARY KEY)");
        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])");
        run("INSERT INTO organizations SELECT generate_series(1, 5)");
        assert_eq!(count("SELECT * FROM tenancy.verify()"), 0);
        run("DROP TABLE org_1.comments");
        run("ALTER SCHEMA org_2 RENAME TO moved");
        run("DROP SCHEMA org_3 CASCADE");
        run("ALTER TABLE organizations DISABLE TRIGGER tenancy_provision");
        run("INSERT INTO organizations VALUES (6)");
        run("CREATE SCHEMA org_7");
        run("INSERT INTO organizations VALUES (7)");
        run("ALTER TABLE organizations ENABLE TRIGGER tenancy_provision");
        run("INSERT INTO tenancy.ledger VALUES ('org_4', '0099', 'ghost', 'x', now(), '0')");
        let problems = strings("SELECT schema_name || ': ' || problem FROM tenancy.verify()");
        let expect = [
            ("org_1: ", "differ"),
            ("org_2: ", "renamed to moved"),
            ("org_3: ", "no longer exists"),
            ("org_4: ", "0099_ghost"),
            ("org_6: ", "no such schema"),
            ("org_7: ", "exists but is not registered"),
        ];
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
        for ((prefix, needle), p) in expect.iter().zip(&problems) {
            assert!(p.starts_with(prefix) && p.contains(needle), "{p}");
        }
    }

    // ---- attribute tenancy ----------------------------------------------------------------

    fn attribute_tables() {
        setup();
        run("CREATE TABLE public.projects_a (tenant_id text NOT NULL, id int PRIMARY KEY, name text)");
        run("CREATE TABLE public.tasks_a (tenant_id text NOT NULL, id int PRIMARY KEY, project_id int, plan_id bigint)");
        run("SELECT tenancy.enable_attribute_tenancy('projects_a', 'tenant_id')");
        run("SELECT tenancy.enable_attribute_tenancy('tasks_a', 'tenant_id')");
        run("SELECT tenancy.add_attribute_tenant('acme'), tenancy.add_attribute_tenant('globex')");
        run("CREATE ROLE tenancy_app");
        run("GRANT SELECT, INSERT, UPDATE, DELETE ON public.projects_a, public.tasks_a TO tenancy_app");
    }

    #[pg_test]
    fn attribute_tenancy_limits_an_ordinary_role_to_its_tenant() {
        attribute_tables();
        assert_eq!(one::<bool>("SELECT relforcerowsecurity AND relrowsecurity FROM pg_class WHERE oid = 'projects_a'::regclass"), Some(true));
        run("SET LOCAL ROLE tenancy_app");
        // No tenant set: nothing visible, nothing insertable.
        assert_eq!(count("SELECT 1 FROM projects_a"), 0);
        fails_bare("INSERT INTO projects_a VALUES ('acme', 1, 'p')", "42501");
        run("SELECT tenancy.set_tenant('acme')");
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()::text").unwrap(),
            "acme"
        );
        run("INSERT INTO projects_a VALUES ('acme', 1, 'rocket'), ('acme', 2, 'anvil')");
        // Writing another tenant's row is refused by the policy's WITH CHECK.
        fails_bare(
            "INSERT INTO projects_a VALUES ('globex', 3, 'doom')",
            "42501",
        );
        run("SELECT tenancy.set_tenant('globex')");
        assert_eq!(count("SELECT 1 FROM projects_a"), 0);
        run("INSERT INTO projects_a VALUES ('globex', 3, 'doom')");
        assert_eq!(count("SELECT 1 FROM projects_a"), 1);
        assert_eq!(
            one::<i64>(
                "WITH u AS (UPDATE projects_a SET name = 'x' RETURNING 1) SELECT count(*) FROM u"
            ),
            Some(1)
        );
        run("SELECT tenancy.set_tenant('acme')");
        assert_eq!(count("SELECT 1 FROM projects_a"), 2);
        fails("SELECT tenancy.set_tenant('initech')", "42704");
        run("RESET ROLE");
        assert_eq!(
            count("SELECT 1 FROM projects_a"),
            3,
            "superusers bypass row-level security"
        );
        // The owner is bound too (FORCE): make the app role the owner and look again.
        run("ALTER TABLE projects_a OWNER TO tenancy_app");
        run("SET LOCAL ROLE tenancy_app");
        run("SELECT tenancy.set_tenant('globex')");
        assert_eq!(count("SELECT 1 FROM projects_a"), 1);
        run("RESET ROLE");
    }

    #[pg_test]
    fn attribute_foreign_keys_are_composite() {
        attribute_tables();
        let fk = one::<String>(
            "SELECT tenancy.add_foreign_key('tasks_a', ARRAY['project_id'], 'projects_a')::text",
        )
        .unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = {}",
                lit(&fk)
            ))
            .unwrap(),
            "FOREIGN KEY (tenant_id, project_id) REFERENCES projects_a(tenant_id, id)"
        );
        // The unique constraint the target needs was added.
        assert_eq!(
            count("SELECT 1 FROM pg_constraint WHERE conrelid = 'projects_a'::regclass AND contype = 'u'"),
            1
        );
        // Even with row-level security bypassed (superuser), a row cannot reference another
        // tenant's row.
        run("INSERT INTO projects_a VALUES ('acme', 1, 'rocket')");
        run("INSERT INTO tasks_a VALUES ('acme', 10, 1)");
        let f = fails_bare("INSERT INTO tasks_a VALUES ('globex', 11, 1)", "23503");
        assert!(f.message.contains(&fk), "{}", f.message);
        // To a table that is not an attribute table: a plain key.
        let plain = one::<String>(
            "SELECT tenancy.add_foreign_key('tasks_a', ARRAY['plan_id'], 'plans')::text",
        )
        .unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = {}",
                lit(&plain)
            ))
            .unwrap(),
            "FOREIGN KEY (plan_id) REFERENCES plans(id)"
        );
        fails(
            "SELECT tenancy.add_foreign_key('tasks_a', ARRAY['nope'], 'projects_a')",
            "42703",
        );
        fails(
            "SELECT tenancy.enable_attribute_tenancy('tasks_a', 'nope')",
            "42703",
        );
        fails("SELECT tenancy.add_foreign_key('tasks_a', ARRAY['project_id', 'plan_id'], 'projects_a', ARRAY['id'])", "22023");
        fails("SELECT tenancy.remove_attribute_tenant('initech')", "42704");
    }

    // ---- migration generator ---------------------------------------------------------------

    /// Applies the generated migration as a registered migration and builds a tenant from all
    /// migrations; it must equal the template in a catalog comparison.
    fn round_trip(template: &str) -> String {
        let generated = one::<String>(&format!(
            "SELECT tenancy.generate_migration({})",
            lit(template)
        ))
        .unwrap();
        run(&format!(
            "SELECT tenancy.add_migration('0100', 'generated', {})",
            lit(&generated)
        ));
        run("SELECT tenancy.create_tenant('round_trip')");
        let diffs = strings(&format!(
            "SELECT object || ': ' || difference FROM tenancy.compare_schemas('round_trip', {})",
            lit(template)
        ));
        assert!(diffs.is_empty(), "{diffs:#?}\n{generated}");
        // Nothing left to generate once the migration is part of the set.
        let again = one::<String>(&format!(
            "SELECT tenancy.generate_migration({})",
            lit(template)
        ))
        .unwrap();
        assert!(again.contains("nothing to do"), "{again}");
        generated
    }

    #[pg_test]
    fn generator_round_trip_with_every_object_kind() {
        setup();
        run("SELECT tenancy.create_template()");
        assert!(one::<String>("SELECT tenancy.generate_migration()")
            .unwrap()
            .contains("nothing to do"));
        run("SET LOCAL search_path = tenant_template, public");
        for ddl in [
            "ALTER TABLE users ADD COLUMN locale text NOT NULL DEFAULT 'en'",
            "DROP INDEX tasks_open_idx",
            "ALTER TABLE projects ALTER COLUMN archived SET DEFAULT true",
            "ALTER TABLE comments ADD COLUMN plan_id bigint REFERENCES public.plans (id)",
            "ALTER TABLE tasks ALTER COLUMN title TYPE varchar(200)",
            "CREATE SEQUENCE invoice_no START 1000 INCREMENT 5",
            "CREATE TABLE invoices (id serial PRIMARY KEY, no bigint NOT NULL DEFAULT nextval('invoice_no'),
               ref bigint GENERATED BY DEFAULT AS IDENTITY, project_id bigint REFERENCES projects (id) ON DELETE CASCADE,
               total numeric(12,2) CHECK (total >= 0), kind text COLLATE \"C\",
               doubled int GENERATED ALWAYS AS (id * 2) STORED, UNIQUE (no), EXCLUDE USING btree (ref WITH =))",
            "CREATE INDEX invoices_total ON invoices (total) WHERE total > 0",
            "CREATE VIEW open_tasks AS SELECT t.* FROM tasks t WHERE done_at IS NULL",
            "CREATE VIEW open_task_titles AS SELECT title FROM open_tasks",
            "CREATE MATERIALIZED VIEW invoice_sums AS SELECT project_id, sum(total) AS total FROM invoices GROUP BY 1",
            "CREATE FUNCTION invoice_total(p bigint) RETURNS numeric LANGUAGE sql STABLE AS $$ SELECT sum(total) FROM tenant_template.invoices WHERE project_id = p $$",
            "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.total := coalesce(NEW.total, 0); RETURN NEW; END $$",
            "CREATE TRIGGER invoices_touch BEFORE INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION touch()",
            "ALTER TABLE invoices ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY invoices_positive ON invoices FOR SELECT USING (total > 0)",
            "DROP TABLE subscription",
            "DROP FUNCTION open_task_count(bigint)",
        ] {
            run(ddl);
        }
        run("RESET search_path");
        let generated = round_trip("tenant_template");
        // References to the template's own objects are unqualified, to shared schemas qualified,
        // and the template's name in bodies became @tenant@.
        assert!(
            generated.contains("REFERENCES public.plans(id)"),
            "{generated}"
        );
        assert!(
            generated.contains("REFERENCES projects(id) ON DELETE CASCADE"),
            "{generated}"
        );
        assert!(generated.contains("FROM @tenant@.invoices"), "{generated}");
        assert!(!generated.contains("tenant_template."), "{generated}");
        // The new tenant's function reads its own tables.
        let def = one::<String>(
            "SELECT pg_get_functiondef('round_trip.invoice_total(bigint)'::regprocedure)",
        )
        .unwrap();
        assert!(def.contains("FROM \"round_trip\".invoices"), "{def}");
    }

    #[pg_test]
    fn generator_makes_attribute_foreign_keys_composite() {
        setup();
        run("SELECT tenancy.create_template('tenant_template', '0')");
        run("CREATE TABLE tenant_template.projects (tenant_id text NOT NULL, id int PRIMARY KEY)");
        run("CREATE TABLE tenant_template.tasks (tenant_id text NOT NULL, id int PRIMARY KEY, project_id int REFERENCES tenant_template.projects (id))");
        run("SELECT tenancy.enable_attribute_tenancy('tenant_template.projects', 'tenant_id')");
        run("SELECT tenancy.enable_attribute_tenancy('tenant_template.tasks', 'tenant_id')");
        let generated =
            one::<String>("SELECT tenancy.generate_migration('tenant_template', '0')").unwrap();
        assert!(
            generated.contains("ALTER TABLE \"projects\" ADD UNIQUE (\"tenant_id\", id)"),
            "{generated}"
        );
        assert!(
            generated.contains(
                "FOREIGN KEY (\"tenant_id\", project_id) REFERENCES projects(\"tenant_id\", id)"
            ),
            "{generated}"
        );
        fails("SELECT tenancy.generate_migration('nope')", "3F000");
        fails("SELECT tenancy.create_template('tenant_template')", "42P06");
        fails(
            "SELECT tenancy.generate_migration('tenant_template', 'x')",
            "22023",
        );
    }

    #[pg_test]
    fn deep_verify_compares_each_tenant_with_what_its_migrations_produce() {
        setup();
        run("SELECT tenancy.create_tenant('a'), tenancy.create_tenant('b')");
        assert_eq!(count("SELECT * FROM tenancy.verify(deep => true)"), 0);
        // A changed default is invisible to the cheap checks, not to the deep one.
        run("ALTER TABLE b.projects ALTER COLUMN archived SET DEFAULT true");
        assert_eq!(count("SELECT * FROM tenancy.verify()"), 0);
        assert_eq!(
            strings("SELECT schema_name || ': ' || problem FROM tenancy.verify(deep => true)"),
            vec!["b: table projects: differs"]
        );
    }

    // ---- hardening: search_path hijack, privileges, bad input --------------------------------

    /// Every public function and trigger, called the way an administrator would.
    fn exercise_everything(suffix: &str, version: &str) {
        let t = format!("hj_{suffix}");
        run(&format!("SELECT tenancy.create_tenant('{t}')"));
        run(&format!("SELECT * FROM tenancy.migrate_tenant('{t}')"));
        run(&format!("SELECT tenancy.rename_tenant('{t}', '{t}_2')"));
        run(&format!("SELECT tenancy.set_tenant('{t}_2')"));
        run("SELECT tenancy.current_tenant(), (SELECT count(*) FROM tenancy.all_tenants())");
        run(&format!("SELECT tenancy.detach_tenant('{t}_2')"));
        run(&format!(
            "SELECT tenancy.register_tenant('{t}_2', (SELECT max(version) FROM tenancy.migrations))"
        ));
        run(&format!(
            "SELECT tenancy.add_migration('{version}', 'hj_{suffix}', 'CREATE TABLE hj_{suffix} (id int)')"
        ));
        run(&format!("SELECT tenancy.repair('{version}')"));
        run(&format!("SELECT * FROM tenancy.migrate_tenant('{t}_2')"));
        run(&format!("SELECT tenancy.manage_tenant('public.hj_orgs_{suffix}', ARRAY['hjo_{suffix}_', ':id'], on_delete => 'drop')"));
        run(&format!(
            "INSERT INTO public.hj_orgs_{suffix} VALUES (1), (2)"
        ));
        run(&format!(
            "UPDATE public.hj_orgs_{suffix} SET id = 3 WHERE id = 1"
        ));
        run(&format!("DELETE FROM public.hj_orgs_{suffix} WHERE id = 3"));
        let _ = Spi::get_one_with_args::<Vec<Option<String>>>(
            "SELECT pg_temp.try_sql($1)",
            &[format!("TRUNCATE public.hj_orgs_{suffix}").as_str().into()],
        );
        run(&format!(
            "SELECT tenancy.unmanage_tenant('public.hj_orgs_{suffix}')"
        ));
        run(&format!(
            "SELECT tenancy.enable_attribute_tenancy('public.hj_attr_{suffix}', 'tenant_id')"
        ));
        run(&format!("SELECT tenancy.add_foreign_key('public.hj_attr_{suffix}', ARRAY['ref'], 'public.hj_attr_{suffix}', ARRAY['id'])"));
        run(&format!("SELECT tenancy.add_attribute_tenant('hj_{suffix}'), tenancy.remove_attribute_tenant('hj_{suffix}')"));
        run(&format!(
            "SELECT tenancy.create_template('hj_tmpl_{suffix}')"
        ));
        run(&format!(
            "SELECT tenancy.generate_migration('hj_tmpl_{suffix}')"
        ));
        run(&format!("SELECT tenancy.describe_schema('hj_tmpl_{suffix}'), (SELECT count(*) FROM tenancy.compare_schemas('hj_tmpl_{suffix}', '{t}_2'))"));
        run("SELECT count(*) FROM tenancy.verify(deep => true)");
        run("SELECT count(*) FROM tenancy.status UNION ALL SELECT count(*) FROM tenancy.progress UNION ALL SELECT count(*) FROM tenancy.migrations UNION ALL SELECT count(*) FROM tenancy.managed_tables");
        let run_id = one::<i64>("SELECT tenancy._fleet_begin(1, NULL, false, '5s')").unwrap();
        while one::<bool>(&format!("SELECT tenancy._fleet_step({run_id}, true)")).unwrap() {}
        run(&format!("SELECT tenancy._fleet_finish({run_id})"));
        run(&format!("SELECT tenancy.drop_tenant('{t}_2')"));
    }

    #[pg_test]
    fn planted_functions_and_operators_never_run() {
        setup();
        run("CREATE ROLE tenancy_attacker");
        run("GRANT CREATE, USAGE ON SCHEMA public TO tenancy_attacker");
        run("CREATE ROLE tenancy_ops");
        run("SELECT tenancy.grant_admin('tenancy_ops')");
        run(&format!(
            "GRANT CREATE ON DATABASE {} TO tenancy_ops",
            one::<String>("SELECT quote_ident(current_database())").unwrap()
        ));
        run("GRANT USAGE, CREATE ON SCHEMA public TO tenancy_ops");
        run("GRANT REFERENCES ON public.plans TO tenancy_ops");
        // The attacker plants look-alikes of what the extension uses, each recording its call.
        run("SET LOCAL ROLE tenancy_attacker");
        run("CREATE TABLE public.planted_calls (fn text)");
        run("GRANT INSERT, SELECT ON public.planted_calls TO PUBLIC");
        let rec = |name: &str| format!("INSERT INTO public.planted_calls VALUES ('{name}')");
        for (sig, ret, body) in [
            ("lower(text)", "text", "RETURN $1"),
            ("upper(text)", "text", "RETURN $1"),
            ("btrim(text)", "text", "RETURN $1"),
            ("format(text)", "text", "RETURN $1"),
            ("format(text, variadic text[])", "text", "RETURN $1"),
            ("quote_ident(text)", "text", "RETURN $1"),
            ("quote_literal(text)", "text", "RETURN $1"),
            ("replace(text, text, text)", "text", "RETURN $1"),
            ("concat(variadic text[])", "text", "RETURN ''"),
            ("array_position(anyarray, anyelement)", "int", "RETURN 1"),
            ("set_config(text, text, boolean)", "text", "RETURN $2"),
            ("current_setting(text)", "text", "RETURN ''"),
            ("current_setting(text, boolean)", "text", "RETURN ''"),
            ("pg_advisory_xact_lock(int, int)", "void", "RETURN"),
            ("hashtext(text)", "int", "RETURN 0"),
            ("now()", "timestamptz", "RETURN '2000-01-01'"),
            (
                "make_interval(secs double precision)",
                "interval",
                "RETURN '0'",
            ),
            (
                "has_database_privilege(text, text)",
                "boolean",
                "RETURN true",
            ),
            ("pg_has_role(oid, text)", "boolean", "RETURN true"),
            (
                "eq_text(text, text)",
                "boolean",
                "RETURN pg_catalog.texteq($1, $2)",
            ),
            (
                "eq_name_text(name, text)",
                "boolean",
                "RETURN pg_catalog.nameeqtext($1, $2)",
            ),
            (
                "eq_oid(oid, oid)",
                "boolean",
                "RETURN pg_catalog.oideq($1, $2)",
            ),
        ] {
            let fname = sig.split('(').next().unwrap();
            run(&format!(
                "CREATE FUNCTION public.{sig} RETURNS {ret} LANGUAGE plpgsql AS $f$ BEGIN {}; {body}; END $f$",
                rec(fname)
            ));
        }
        run(
            "CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.eq_text)",
        );
        run("CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = text, FUNCTION = public.eq_name_text)");
        run("CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.eq_oid)");
        run("RESET ROLE");
        for (who, suffix, version) in [("", "su", "0901"), ("tenancy_ops", "ops", "0902")] {
            run(&format!(
                "CREATE TABLE public.hj_orgs_{suffix} (id int PRIMARY KEY)"
            ));
            run(&format!("CREATE TABLE public.hj_attr_{suffix} (tenant_id text NOT NULL, id int PRIMARY KEY, ref int)"));
            run(&format!(
                "ALTER TABLE public.hj_orgs_{suffix} OWNER TO {}",
                if who.is_empty() { "CURRENT_USER" } else { who }
            ));
            run(&format!(
                "ALTER TABLE public.hj_attr_{suffix} OWNER TO {}",
                if who.is_empty() { "CURRENT_USER" } else { who }
            ));
            if !who.is_empty() {
                run(&format!("SET LOCAL ROLE {who}"));
            }
            // The worst case: the victim puts public before pg_catalog.
            run("SET LOCAL search_path = public, pg_catalog");
            exercise_everything(suffix, version);
            run("RESET search_path");
            run("RESET ROLE");
        }
        let calls = strings("SELECT fn FROM public.planted_calls ORDER BY 1");
        assert!(calls.is_empty(), "planted code ran: {calls:?}");
        // Control: the plants do catch unqualified calls made under that search_path.
        run("SET LOCAL search_path = public, pg_catalog");
        run("SELECT lower('X'), 'a'::text = 'b'::text");
        run("RESET search_path");
        assert_eq!(
            strings("SELECT fn FROM public.planted_calls ORDER BY 1"),
            vec!["eq_text", "lower"]
        );
    }

    #[pg_test]
    fn a_role_granted_one_tenant_cannot_read_another() {
        setup();
        run("CREATE ROLE tenancy_reader_a");
        run("SELECT tenancy.create_tenant('a'), tenancy.create_tenant('b')");
        run("GRANT USAGE ON SCHEMA a TO tenancy_reader_a; GRANT SELECT ON ALL TABLES IN SCHEMA a TO tenancy_reader_a");
        run("SET LOCAL ROLE tenancy_reader_a");
        assert_eq!(count("SELECT 1 FROM a.users"), 0);
        fails_bare("SELECT 1 FROM b.users", "42501");
        // PUBLIC reaches no tenant schema out of the box.
        fails_bare("SELECT 1 FROM b.projects", "42501");
        run("RESET ROLE");
        assert_eq!(
            one::<bool>("SELECT has_schema_privilege('public', 'b', 'USAGE')"),
            Some(false)
        );
    }

    #[pg_test]
    fn bad_input_sweep_never_gives_xx000() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        run("CREATE TABLE public.sweep (id int PRIMARY KEY, label text, at timestamptz)");
        let long = "x".repeat(1 << 20);
        let values: Vec<String> = vec![
            "NULL".into(),
            "''".into(),
            lit(&"a".repeat(64)),
            lit(&"é".repeat(40)),
            lit("a'b\"c"),
            lit("x; DROP SCHEMA public CASCADE; --"),
            lit("tab\there\nnewline\u{7}bell"),
            lit(&long),
        ];
        let calls: Vec<(&str, usize)> = vec![
            ("tenancy.create_tenant({})", 1),
            ("tenancy.register_tenant({}, {})", 2),
            ("tenancy.rename_tenant({}, {})", 2),
            ("tenancy.detach_tenant({})", 1),
            ("tenancy.drop_tenant({})", 1),
            ("tenancy.set_tenant({})", 1),
            ("* FROM tenancy.migrate_tenant({}, {})", 2),
            ("tenancy.add_migration({}, {}, {})", 3),
            ("tenancy.repair({})", 1),
            ("tenancy.add_attribute_tenant({})", 1),
            ("tenancy.remove_attribute_tenant({})", 1),
            ("tenancy.create_template({}, {})", 2),
            ("tenancy.generate_migration({}, {})", 2),
            ("tenancy.compare_schemas({}, {})", 2),
            ("tenancy.describe_schema({})", 1),
        ];
        let mut checked = 0;
        for (call, arity) in &calls {
            for v in &values {
                for pos in 0..*arity {
                    let args: Vec<String> = (0..*arity)
                        .map(|i| {
                            if i == pos {
                                v.clone()
                            } else if i == 0 {
                                lit("org_1")
                            } else {
                                "NULL".into()
                            }
                        })
                        .collect();
                    let mut sql = format!("SELECT {call}");
                    for a in &args {
                        sql = sql.replacen("{}", a, 1);
                    }
                    let r = Spi::get_one_with_args::<Vec<Option<String>>>(
                        "SELECT pg_temp.try_sql($1)",
                        &[sql.as_str().into()],
                    )
                    .unwrap();
                    if let Some(err) = r {
                        let state = err[0].clone().unwrap_or_default();
                        assert_ne!(
                            state,
                            "XX000",
                            "{}: {:?}",
                            &sql[..sql.len().min(200)],
                            err[1]
                        );
                    }
                    checked += 1;
                }
            }
        }
        // Relations and columns: unknown regclass, wrong columns, wrong types.
        for sql in [
            "SELECT tenancy.manage_tenant('no_such_table', ARRAY['x_', ':id'])",
            "SELECT tenancy.manage_tenant('sweep', ARRAY['x_', ':nope'])",
            "SELECT tenancy.manage_tenant('sweep', ARRAY[NULL]::text[])",
            "SELECT tenancy.manage_tenant('sweep', ARRAY['x_', ':id'], on_delete => NULL)",
            "SELECT tenancy.enable_attribute_tenancy('sweep', 'nope')",
            "SELECT tenancy.enable_attribute_tenancy('pg_class', 'oid')",
            "SELECT tenancy.add_foreign_key('sweep', ARRAY['label'], 'sweep', ARRAY['at'])",
            "SELECT tenancy.add_foreign_key('sweep', ARRAY[]::name[], 'sweep')",
            "SELECT tenancy.unmanage_tenant('sweep')",
            "SELECT tenancy.grant_admin('no_such_role')",
        ] {
            let r = Spi::get_one_with_args::<Vec<Option<String>>>(
                "SELECT pg_temp.try_sql($1)",
                &[sql.into()],
            )
            .unwrap();
            let err = r.unwrap_or_else(|| panic!("{sql} succeeded"));
            assert_ne!(
                err[0].clone().unwrap_or_default(),
                "XX000",
                "{sql}: {:?}",
                err[1]
            );
            checked += 1;
        }
        assert!(checked > 150, "{checked}");
    }

    // ---- hygiene ---------------------------------------------------------------------------

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
                "tenancy.ledger",
                "tenancy.managed_table_settings",
                "tenancy.registered_migrations",
                "tenancy.tenants"
            ]
        );
    }

    #[pg_test]
    fn public_cannot_run_ddl_functions() {
        setup();
        let ddl = strings(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace
             AND p.proname NOT IN ('all_tenants', 'current_tenant', 'set_tenant', '_embedded_migrations') ORDER BY 1",
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
        ] {
            fails(sql, state);
        }
    }
}
