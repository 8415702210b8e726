//! Tenant names: hostile names go through the whole lifecycle unexecuted; bad names are refused before any DDL.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{
        count, fails, ledger, lit, one, run, schema_exists, setup, strings,
    };
    use crate::rules::names::quote_ident;
    use pgrx::prelude::*;

    fn full_cycle(name: &str) {
        let public_before =
            one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'public'");
        let schemas_before = count("SELECT 1 FROM pg_namespace");
        run(&format!("SELECT tenancy.create_tenant({})", lit(name)));
        assert!(schema_exists(name), "{name}");
        assert_eq!(ledger(name).len(), 7);
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
        assert_eq!(ledger(&renamed).len(), 8);
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
}
