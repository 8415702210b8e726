//! Hardening: planted functions and operators, privileges between tenants, bad input.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails_bare, lit, one, run, setup, strings};
    use pgrx::prelude::*;

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
}
