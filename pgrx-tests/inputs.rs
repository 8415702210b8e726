//! Input validation (issue 13, case 8): NULLs and every other bad argument get a specific SQLSTATE
//! and a hint, never XX000 or a silent empty answer; migration names, versions and tenant names
//! have limits; transaction control a migration cannot run is refused when it is registered; no
//! NOTICE noise; a session's tenant that was dropped or renamed is reported, not used.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, lit, one, run, setup, strings};
    use pgrx::prelude::*;
    use std::cell::RefCell;
    use std::ffi::CStr;

    /// A value of each argument type the routines take, for the arguments that are not the NULL
    /// under test. `None`: no sample, the argument is NULL too.
    fn sample(ty: &str) -> Option<&'static str> {
        Some(match ty {
            "text" | "name" => "'org_1'",
            "boolean" => "false",
            "integer" | "bigint" => "1",
            "oid" => "'public.sweep'::regclass::oid",
            "regclass" => "'public.sweep'::regclass",
            "regrole" => "current_user::regrole",
            "text[]" => "ARRAY['org_', ':id']",
            "name[]" => "ARRAY['id']::name[]",
            "oid[]" => "ARRAY[]::oid[]",
            "interval" => "'5s'::interval",
            "timestamp with time zone" => "now()",
            _ => return None,
        })
    }

    /// Parameters where NULL has a documented meaning (their function's page says which).
    /// Internal helpers (`_` names: the fleet's steps, the wrappers' targets, event trigger
    /// helpers) are called by pg_tenancy's own SQL, never with NULL; for them only XX000 counts.
    const NULL_MEANS_SOMETHING: [(&str, usize); 15] = [
        ("create_template", 1),    // base_version: all migrations
        ("generate_migration", 1), // base_version: all migrations
        ("create_tenant", 1),      // owner: the calling role
        ("_create_tenant", 1),     // owner: the calling role
        ("register_tenant", 1),    // baseline: nothing applied yet
        ("_register_tenant", 1),   // baseline
        ("migrate_tenant", 1),     // target: the newest version
        ("manage_tenant", 5),      // owner: the role inserting the row
        ("add_foreign_key", 3),    // to_cols: the primary key
        ("drop_tenant", 1),        // lock_timeout: the setting tenancy.drop_lock_timeout
        ("share_table", 1),        // key: the primary key
        ("reference_shared", 3),   // key: the shared table's key
        ("_share_table", 1),       // key
        ("_reference_shared", 3),  // key
        ("build_snapshot", 0),     // owner: the calling role
    ];

    /// Every routine of the extension, each parameter NULL in turn (the others a plausible
    /// value): a specific SQLSTATE (never XX000), and no silent success unless NULL has a meaning
    /// there.
    #[pg_test]
    fn null_sweep_over_every_routine() {
        setup();
        run("SET LOCAL statement_timeout = '20s'");
        run("SELECT tenancy.create_tenant('org_1')");
        run("CREATE TABLE public.sweep (id int PRIMARY KEY, label text)");
        let routines: Vec<(String, String, String)> = Spi::connect(|c| {
            c.select(
                "SELECT p.proname::text, p.prokind::text,
                        coalesce(array_to_string(ARRAY(SELECT format_type(t, NULL)
                                 FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n) ORDER BY n), ','), '')
                 FROM pg_proc p
                 WHERE p.pronamespace = 'tenancy'::regnamespace AND p.pronargs > 0
                   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
                 ORDER BY 1, 3",
                None,
                &[],
            )
            .unwrap()
            .map(|r| {
                (
                    r.get::<String>(1).unwrap().unwrap(),
                    r.get::<String>(2).unwrap().unwrap(),
                    r.get::<String>(3).unwrap().unwrap(),
                )
            })
            .collect()
        });
        assert!(routines.len() > 30, "{routines:?}");
        let mut problems = Vec::new();
        for (name, kind, types) in &routines {
            let types: Vec<&str> = types.split(',').collect();
            for pos in 0..types.len() {
                let args: Vec<String> = types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| match (i == pos, sample(t)) {
                        (false, Some(v)) => v.to_string(),
                        _ => format!("NULL::{t}"),
                    })
                    .collect();
                let call = format!(
                    "tenancy.{}({})",
                    crate::rules::names::quote_ident(name),
                    args.join(", ")
                );
                let sql = if kind == "p" {
                    format!("CALL {call}")
                } else {
                    format!("SELECT {call}")
                };
                let r = Spi::get_one_with_args::<Vec<Option<String>>>(
                    "SELECT pg_temp.try_sql($1)",
                    &[sql.as_str().into()],
                )
                .unwrap();
                match r {
                    Some(err) => {
                        let state = err[0].clone().unwrap_or_default();
                        if state == "XX000" {
                            problems.push(format!("{sql}: XX000 {:?}", err[1]));
                        }
                    }
                    None => {
                        if name == "drop_tenant" {
                            // It dropped org_1 (lock_timeout NULL: the setting); the routines
                            // after it need the tenant again.
                            run("SELECT tenancy.create_tenant('org_1')");
                        }
                        let meaningful = NULL_MEANS_SOMETHING.contains(&(name.as_str(), pos));
                        if !meaningful && !name.starts_with('_') {
                            problems.push(format!("{sql}: accepted a NULL"));
                        }
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    thread_local! {
        static NOTICES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn capture(edata: *mut pg_sys::ErrorData) {
        // SAFETY: PostgreSQL passes the error being emitted; its message is a C string or NULL.
        unsafe {
            if (*edata).elevel == pg_sys::NOTICE as i32 && !(*edata).message.is_null() {
                let m = CStr::from_ptr((*edata).message)
                    .to_string_lossy()
                    .into_owned();
                NOTICES.with(|n| n.borrow_mut().push(m));
                (*edata).output_to_client = false;
            }
        }
    }

    /// The NOTICEs `sql` sends a client at client_min_messages = notice.
    fn notices_of(sql: &str) -> Vec<String> {
        struct Restore(pg_sys::emit_log_hook_type);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: puts back the hook that was there before.
                unsafe { pg_sys::emit_log_hook = self.0 };
            }
        }
        run("SET LOCAL client_min_messages = notice");
        NOTICES.with(|n| n.borrow_mut().clear());
        // SAFETY: a backend-global hook, set and restored on this backend's only thread.
        let _restore = Restore(unsafe { pg_sys::emit_log_hook });
        unsafe { pg_sys::emit_log_hook = Some(capture) };
        run(sql);
        NOTICES.with(|n| n.borrow().clone())
    }

    #[pg_test]
    fn first_use_of_manage_tenant_and_attribute_tenancy_is_quiet() {
        setup();
        // The capture itself works.
        assert_eq!(
            notices_of("DROP TABLE IF EXISTS public.no_such_table"),
            vec!["table \"no_such_table\" does not exist, skipping"]
        );
        run("CREATE TABLE public.orgs (id bigint PRIMARY KEY)");
        let n = notices_of("SELECT tenancy.manage_tenant('public.orgs', ARRAY['org_', ':id'])");
        assert!(n.is_empty(), "manage_tenant: {n:?}");
        let n = notices_of(
            "SELECT tenancy.manage_tenant('public.orgs', ARRAY['org_', ':id'], on_delete => 'drop')",
        );
        assert!(n.is_empty(), "manage_tenant again: {n:?}");
        let n = notices_of("SELECT tenancy.unmanage_tenant('public.orgs')");
        assert!(n.is_empty(), "unmanage_tenant: {n:?}");
        run("CREATE TABLE public.invoices (tenant_id text NOT NULL, id int)");
        let n =
            notices_of("SELECT tenancy.enable_attribute_tenancy('public.invoices', 'tenant_id')");
        assert!(n.is_empty(), "enable_attribute_tenancy: {n:?}");
        let n =
            notices_of("SELECT tenancy.enable_attribute_tenancy('public.invoices', 'tenant_id')");
        assert!(n.is_empty(), "enable_attribute_tenancy again: {n:?}");
    }

    #[pg_test]
    fn migration_names_and_versions_have_limits() {
        setup();
        let before = count("SELECT 1 FROM tenancy.registered_migrations");
        let f = fails(
            &format!(
                "SELECT tenancy.add_migration('0100', {}, 'SELECT 1')",
                lit(&"n".repeat(10_000))
            ),
            "22023",
        );
        assert!(f.message.contains("0100"), "{}", f.message);
        assert!(f.message.contains("10000 characters"), "{}", f.message);
        for v in ["0", "0000"] {
            let f = fails(
                &format!(
                    "SELECT tenancy.add_migration({}, 'zero', 'SELECT 1')",
                    lit(v)
                ),
                "22023",
            );
            assert!(f.message.contains(&format!("\"{v}\"")), "{}", f.message);
        }
        let long = "1".repeat(26);
        let f = fails(
            &format!(
                "SELECT tenancy.add_migration({}, 'long', 'SELECT 1')",
                lit(&long)
            ),
            "22023",
        );
        assert!(f.message.contains(&long), "{}", f.message);
        assert!(f.hint.contains("18"), "{}", f.hint);
        assert_eq!(count("SELECT 1 FROM tenancy.registered_migrations"), before);
        // The limits themselves are accepted.
        run(&format!(
            "SELECT tenancy.add_migration({}, {}, 'SELECT 1')",
            lit(&"9".repeat(18)),
            lit(&"n".repeat(100))
        ));
    }

    #[pg_test]
    fn an_unknown_base_version_is_refused() {
        setup();
        for sql in [
            "SELECT tenancy.create_template('tpl_x', base_version => '0999')",
            "SELECT tenancy.generate_migration('tpl_x', base_version => '0999')",
        ] {
            let f = fails(sql, "42704");
            assert!(f.message.contains("0999"), "{sql}: {}", f.message);
        }
        assert_eq!(
            count("SELECT 1 FROM pg_namespace WHERE nspname = 'tpl_x'"),
            0
        );
        fails("SELECT tenancy.register_tenant('org_x', '0999')", "3F000");
        run("CREATE SCHEMA org_x");
        let f = fails("SELECT tenancy.register_tenant('org_x', '0999')", "42704");
        assert!(f.message.contains("0999"), "{}", f.message);
        // '0' still means "no migrations" for the generator.
        run("SELECT tenancy.create_template('tpl_0', base_version => '0')");
        assert_eq!(
            count("SELECT 1 FROM pg_class WHERE relnamespace = 'tpl_0'::regnamespace"),
            0
        );
        run("SELECT tenancy.create_template('tpl_3', base_version => '3')");
    }

    #[pg_test]
    fn tenant_names_with_control_characters_are_refused() {
        setup();
        for name in [
            "org\t1",
            "org\n1",
            "org\u{7}",
            "org\u{7f}",
            "org\u{85}x",
            "\r",
        ] {
            for sql in [
                format!("SELECT tenancy.create_tenant({})", lit(name)),
                format!("SELECT tenancy.register_tenant({})", lit(name)),
            ] {
                let f = fails(&sql, "42602");
                assert!(
                    f.message.contains("control character"),
                    "{sql}: {}",
                    f.message
                );
            }
        }
        run("SELECT tenancy.create_tenant('org_1')");
        let f = fails("SELECT tenancy.rename_tenant('org_1', E'org\\t2')", "42602");
        assert!(f.message.contains("U+0009"), "{}", f.message);
        fails("SELECT tenancy.add_attribute_tenant(E'acme\\n')", "22023");
        assert_eq!(count("SELECT 1 FROM tenancy.tenants"), 1);
    }

    #[pg_test]
    fn transaction_control_in_a_do_body_is_refused_at_registration() {
        setup();
        for body in [
            "DO $$ BEGIN COMMIT; END $$",
            "DO $$BEGIN CREATE TABLE t (x int); commit and chain; END$$",
            "DO LANGUAGE plpgsql $b$ BEGIN IF true THEN ROLLBACK; END IF; END $b$",
            "DO 'BEGIN COMMIT; END'",
            "DO $$ BEGIN SAVEPOINT s; END $$",
            "DO $$ BEGIN PERFORM 1; RELEASE SAVEPOINT s; END $$",
            "DO $$ BEGIN START TRANSACTION; END $$",
        ] {
            let sql = format!(
                "SELECT tenancy.add_migration('0100', 'x', {})",
                lit(&format!("CREATE TABLE a (x int);\n{body};"))
            );
            let f = fails(&sql, "25001");
            assert!(
                f.message.contains("0100_x") && f.message.contains("statement 2"),
                "{body}: {}",
                f.message
            );
            assert!(f.message.contains("DO"), "{body}: {}", f.message);
        }
        assert_eq!(count("SELECT 1 FROM tenancy.registered_migrations"), 0);
        // A DO body's own BEGIN … END, and words that merely contain the keywords, are fine.
        run("SELECT tenancy.add_migration('0100', 'x', $m$DO $$ DECLARE committed int; BEGIN committed := 1; RAISE NOTICE 'COMMIT;'; END $$;$m$)");
        // What the lexer cannot see fails when applied: a procedure that commits.
        run("SELECT tenancy.add_migration('0101', 'proc', $m$CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$; CALL p();$m$)");
        let f = fails("SELECT tenancy.create_tenant('org_1')", "2D000");
        assert!(f.message.contains("0101_proc"), "{}", f.message);
    }

    /// A session-level set_tenant is not silently stale: once its tenant is dropped or renamed,
    /// current_tenant() says so (55000), even when another tenant took the old name.
    #[pg_test]
    fn a_stale_session_tenant_is_reported() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        run("SELECT tenancy.create_tenant('org_2')");
        run("SELECT tenancy.set_tenant('org_1', false)");
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()::text").as_deref(),
            Some("org_1")
        );
        run("SELECT tenancy.rename_tenant('org_1', 'org_100')");
        let f = fails("SELECT tenancy.current_tenant()", "55000");
        assert!(
            f.message.contains("\"org_1\"") && f.message.contains("\"org_100\""),
            "{}",
            f.message
        );
        assert!(f.hint.contains("set_tenant"), "{}", f.hint);
        // The old name taken by a new tenant: still not that tenant.
        run("SELECT tenancy.create_tenant('org_1')");
        let f = fails("SELECT tenancy.current_tenant()", "55000");
        assert!(f.message.contains("\"org_100\""), "{}", f.message);
        // Dropped.
        run("SELECT tenancy.set_tenant('org_2', false)");
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()::text").as_deref(),
            Some("org_2")
        );
        run("SELECT tenancy.drop_tenant('org_2')");
        let f = fails("SELECT tenancy.current_tenant()", "55000");
        assert!(f.message.contains("no longer exists"), "{}", f.message);
        // A schema dropped behind pg_tenancy's back, and one put in its place: set_tenant
        // refuses both instead of blaming USAGE or choosing the impostor.
        run("SELECT tenancy.create_tenant('org_3')");
        run("DROP SCHEMA org_3 CASCADE");
        let f = fails("SELECT tenancy.set_tenant('org_3')", "3F000");
        assert!(f.message.contains("\"org_3\""), "{}", f.message);
        run("CREATE SCHEMA org_3");
        fails("SELECT tenancy.set_tenant('org_3')", "3F000");
        // set_tenant again puts it right; attribute tenants and no tenant are unaffected.
        run("SELECT tenancy.set_tenant('org_1', false)");
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()::text").as_deref(),
            Some("org_1")
        );
        run("SELECT tenancy.add_attribute_tenant('acme')");
        run("SELECT tenancy.set_tenant('acme', false)");
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()::text").as_deref(),
            Some("acme")
        );
        run("RESET tenancy.tenant");
        assert_eq!(one::<String>("SELECT tenancy.current_tenant()::text"), None);
        assert_eq!(
            strings("SELECT 1::text WHERE tenancy.current_tenant() IS NULL"),
            vec!["1"]
        );
    }
}
