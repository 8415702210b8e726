//! The adversarial suite of issue 12: a tenant owner and an authoring role plant traps, and a
//! superuser provisions, migrates (migrate_tenant, the fleet's steps), verifies (plain and deep),
//! reconciles and generates. No hostile role may come out with a privilege it did not have, and
//! every attempt either ran with the hostile role's (the owner's) rights or failed with 42501.
//!
//! Every trap calls the same body (`escalate`): it logs who runs it into `public.adv_log` (writable
//! by everyone), then tries each escalation in its own sub-block that swallows 42501 only, so a trap
//! never breaks a migration by itself when it runs with the owner's rights. Run as a superuser it
//! makes its role SUPERUSER/CREATEROLE/CREATEDB, a member of `adv_vault` and
//! `pg_read_server_files`, grants it the superuser-owned canary table, sets the superuser's
//! default privileges to include it, and writes the canary.
//!
//! Assumptions (the stricter reading where the brief leaves a choice):
//! - The tenant owner and the author are the application's own roles (`grant_provision` and
//!   `grant_author`), each with CREATE on the database and REFERENCES (the owner also SELECT) on
//!   `public.plans`, the privileges the shipped migrations and the seed data need.
//! - `verify()`, `verify(deep => true)`, `reconcile(dry_run => false)`, `create_template`,
//!   `generate_migration`, `compare_schemas` and `describe_schema` run by a superuser either
//!   succeed or fail 42501; any other SQLSTATE (XX000 included) counts as a failure of the test.
//! - A fleet item that fails must fail with 42501 (its `error` starts with the SQLSTATE).
//! - Tenant-schema shadows with the same signature as a built-in (`lower(text)`, `=(text, text)`)
//!   are never reached (pg_catalog is searched first); better matches (`lower(varchar)`,
//!   `=(varchar, varchar)`) and shadows of shared `public` functions are reached — as the owner.
//! - Functions a migration creates (the author's SECURITY DEFINER `backdoor`) are owned by the
//!   tenant schema's owner.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{lit, one, run, setup, strings};
    use crate::in_db::trust_support::{
        app_role, attempt, attempt_as, privileges_of, role, superuser,
    };
    use pgrx::prelude::*;

    const CANARY: &str = "public.adv_canary";

    /// The shared stage: a superuser-only canary table, a log everyone can write, and a role
    /// whose membership would be a gained privilege.
    fn stage() {
        setup();
        role("adv_vault");
        run("CREATE TABLE public.adv_canary (tag text)");
        run("REVOKE ALL ON public.adv_canary FROM PUBLIC");
        run("CREATE TABLE public.adv_log (tag text, who text)");
        run("GRANT INSERT, SELECT ON public.adv_log TO PUBLIC");
    }

    /// PL/pgSQL statements: log who runs this (tagged `tag`, an SQL expression), then try every
    /// escalation for `hostile`, each skipped when it lacks the rights (42501).
    fn escalate(hostile: &str, tag: &str) -> String {
        let mut body = format!("INSERT INTO public.adv_log VALUES ({tag}, current_user::text);\n");
        for stmt in [
            format!("ALTER ROLE {hostile} SUPERUSER"),
            format!("ALTER ROLE {hostile} CREATEROLE CREATEDB"),
            format!("GRANT adv_vault TO {hostile}"),
            format!("GRANT pg_read_server_files TO {hostile}"),
            format!("GRANT ALL ON public.adv_canary TO {hostile}"),
            format!("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {hostile}"),
            format!("INSERT INTO public.adv_canary VALUES ('{hostile}')"),
        ] {
            body.push_str(&format!(
                "BEGIN EXECUTE {}; EXCEPTION WHEN insufficient_privilege THEN NULL; END;\n",
                lit(&stmt)
            ));
        }
        body
    }

    /// One thing the superuser (or the attacker) does, and how it ended.
    struct Attempts(Vec<(String, Option<(String, String)>)>);

    impl Attempts {
        fn sql(&mut self, sql: &str) {
            self.0.push((sql.to_string(), attempt(sql)));
        }
        fn sql_as(&mut self, role: &str, sql: &str) {
            self.0
                .push((format!("as {role}: {sql}"), attempt_as(role, sql)));
        }
        /// The fleet's steps (what `CALL migrate_all` and its workers run), each failed tenant an
        /// outcome of its own.
        fn fleet(&mut self) {
            let run_id = one::<i64>("SELECT tenancy._fleet_begin(1, NULL, false, '5s')").unwrap();
            while one::<bool>(&format!("SELECT tenancy._fleet_step({run_id}, true)")).unwrap() {}
            run(&format!("SELECT tenancy._fleet_finish({run_id})"));
            for e in strings(&format!(
                "SELECT schema_name || '|' || error FROM tenancy.fleet_items WHERE run_id = {run_id} AND state = 'failed'"
            )) {
                let (tenant, error) = e.split_once('|').unwrap();
                let state = error.split(':').next().unwrap_or_default().to_string();
                self.0.push((
                    format!("migrate_all on {tenant}"),
                    Some((state, error.to_string())),
                ));
            }
        }
        /// Every outcome other than success or 42501.
        fn unexpected(&self) -> Vec<String> {
            self.0
                .iter()
                .filter_map(|(what, r)| match r {
                    Some((s, m)) if s != "42501" => Some(format!("{what}: {s} {m}")),
                    _ => None,
                })
                .collect()
        }
    }

    /// Everything that says a hostile role gained something, compared with `before`.
    fn violations(hostile: &str, before: &[String], attempts: &Attempts) -> Vec<String> {
        let mut out: Vec<String> = attempts
            .unexpected()
            .into_iter()
            .map(|a| format!("neither ran nor failed 42501: {a}"))
            .collect();
        out.extend(
            strings(&format!(
                "SELECT tag || ' ran as ' || who FROM public.adv_log WHERE who <> {} ORDER BY 1",
                lit(hostile)
            ))
            .into_iter()
            .map(|r| format!("trap {r}")),
        );
        let after = privileges_of(hostile, CANARY);
        out.extend(
            after
                .iter()
                .filter(|p| !before.contains(p))
                .map(|p| format!("{hostile} gained {p}")),
        );
        out.extend(strings(
            "SELECT 'canary written: ' || tag FROM public.adv_canary ORDER BY 1",
        ));
        // Default privileges: a table the superuser creates now is not the hostile role's.
        run("CREATE TABLE public.adv_after (id int)");
        out.extend(strings(&format!(
            "SELECT {} || ' has ' || p || ' on a table the superuser created afterwards'
             FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE']) AS p
             WHERE has_table_privilege({}, 'public.adv_after', p)",
            lit(hostile),
            lit(hostile)
        )));
        out
    }

    /// The superuser administers the fleet the way the docs say: verify, reconcile, generate.
    fn administer(a: &mut Attempts, tenant: &str) {
        a.sql("SELECT count(*) FROM tenancy.verify()");
        a.sql("SELECT count(*) FROM tenancy.verify(deep => true)");
        a.sql("SELECT count(*) FROM tenancy.reconcile(dry_run => false)");
        a.sql("SELECT tenancy.create_template('adv_tmpl')");
        run("CREATE SCHEMA IF NOT EXISTS adv_tmpl2");
        a.sql("SELECT tenancy.generate_migration('adv_tmpl2')");
        a.sql(&format!(
            "SELECT count(*) FROM tenancy.compare_schemas('adv_tmpl2', {})",
            lit(tenant)
        ));
        a.sql(&format!("SELECT tenancy.describe_schema({})", lit(tenant)));
    }

    /// A tenant's owner plants traps in its own tenant; a superuser's seed-data migration, the
    /// fleet, verify, reconcile and the generator must reach them only with the owner's rights.
    #[pg_test]
    fn tenant_owner_traps_never_run_with_a_superusers_rights() {
        stage();
        let owner = "adv_owner";
        app_role(owner, "provision");
        run("GRANT SELECT ON public.plans TO adv_owner");
        // The application's shared function, which migrations call unqualified.
        run("CREATE FUNCTION public.adv_slug(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower($1) $$");
        let before = privileges_of(owner, CANARY);
        let mut a = Attempts(Vec::new());
        a.sql_as(owner, "SELECT tenancy.create_tenant('adv_t')");
        let trap = |tag: &str| format!("PERFORM adv_t.pwn({});", lit(tag));
        let plant = [
            // The body every trap calls.
            format!(
                "CREATE FUNCTION adv_t.pwn(tag text) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN {} RETURN true; END $f$",
                escalate(owner, "tag")
            ),
            // A trigger on a tenant table: fires on every row a migration writes.
            format!("CREATE FUNCTION adv_t.trap_trigger() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN {} RETURN NEW; END $f$", trap("trigger")),
            "CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON adv_t.users FOR EACH ROW EXECUTE FUNCTION adv_t.trap_trigger()".into(),
            // A function in a column default: runs on an INSERT that omits the column.
            format!("CREATE FUNCTION adv_t.trap_default() RETURNS text LANGUAGE plpgsql AS $f$ BEGIN {} RETURN ''; END $f$", trap("default")),
            "ALTER TABLE adv_t.users ALTER COLUMN full_name SET DEFAULT adv_t.trap_default()".into(),
            // A function in a CHECK constraint: runs on every row written.
            format!("CREATE FUNCTION adv_t.trap_check(text) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN {} RETURN true; END $f$", trap("check")),
            "ALTER TABLE adv_t.users ADD CONSTRAINT trap_check CHECK (adv_t.trap_check(email))".into(),
            // An index expression, declared IMMUTABLE, calling the volatile body (CVE-2022-1552's shape).
            format!("CREATE FUNCTION adv_t.trap_index(text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN {} RETURN $1; END $f$", trap("index")),
            "CREATE INDEX trap_idx ON adv_t.users (adv_t.trap_index(email))".into(),
            // A view shadowing the shared public.plans: a migration reading `plans` unqualified
            // reads the tenant's view first, and a function in a view runs as its caller.
            format!("CREATE FUNCTION adv_t.trap_view(bigint) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN {} RETURN true; END $f$", trap("view")),
            "CREATE VIEW adv_t.plans AS SELECT id, label FROM public.plans WHERE adv_t.trap_view(id)".into(),
            // A SECURITY DEFINER function in a default: it runs as its owner whoever writes.
            format!("CREATE FUNCTION adv_t.trap_definer() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $f$ BEGIN {} RETURN ''; END $f$", trap("definer")),
            "ALTER TABLE adv_t.users ADD COLUMN note text DEFAULT adv_t.trap_definer()".into(),
            // Same signatures as built-ins: pg_catalog is searched first, so never reached.
            format!("CREATE FUNCTION adv_t.lower(text) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN {} RETURN pg_catalog.lower($1); END $f$", trap("lower(text)")),
            format!("CREATE FUNCTION adv_t.eq_text(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN {} RETURN pg_catalog.texteq($1, $2); END $f$", trap("=(text,text)")),
            "CREATE OPERATOR adv_t.= (LEFTARG = text, RIGHTARG = text, FUNCTION = adv_t.eq_text)".into(),
            // Better matches than the built-ins for varchar arguments: an unqualified lower(v) or
            // v = 'x' on a varchar column picks these over pg_catalog's text versions.
            format!("CREATE FUNCTION adv_t.lower(varchar) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN {} RETURN pg_catalog.lower($1); END $f$", trap("lower(varchar)")),
            format!("CREATE FUNCTION adv_t.eq_varchar(varchar, varchar) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN {} RETURN pg_catalog.texteq($1, $2); END $f$", trap("=(varchar,varchar)")),
            "CREATE OPERATOR adv_t.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = adv_t.eq_varchar)".into(),
            // The application's shared function, shadowed: the tenant precedes public.
            format!("CREATE FUNCTION adv_t.adv_slug(text) RETURNS text LANGUAGE plpgsql AS $f$ BEGIN {} RETURN $1; END $f$", trap("adv_slug")),
        ];
        run(&format!("SET LOCAL ROLE {owner}"));
        for sql in &plant {
            run(sql);
        }
        run("RESET ROLE");
        // ALTER DEFAULT PRIVILEGES for the superuser's future objects: refused to the owner
        // directly (the traps try it for whoever runs them).
        a.sql_as(
            owner,
            &format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA adv_t GRANT ALL ON TABLES TO adv_owner",
                superuser()
            ),
        );
        // The superuser's innocent seed-data migration touches every trap.
        run(r#"SELECT tenancy.add_migration('0102', 'seed', $m$
            INSERT INTO users (email) VALUES ('seed@example.com');
            ALTER TABLE users ADD COLUMN handle varchar(64);
            UPDATE users SET handle = 'seed' WHERE lower(email) = 'seed@example.com';
            UPDATE users SET full_name = adv_slug(full_name) WHERE lower(handle) = 'seed' AND handle = 'seed';
            CREATE TABLE plan_copy AS SELECT id, label FROM plans;
        $m$)"#);
        a.sql("SELECT * FROM tenancy.migrate_tenant('adv_t')");
        run(r#"SELECT tenancy.add_migration('0103', 'touch', $m$
            UPDATE users SET full_name = full_name || '.' WHERE handle = 'seed';
            INSERT INTO users (email, handle) VALUES ('second@example.com', 'second');
        $m$)"#);
        a.fleet();
        administer(&mut a, "adv_t");
        // The traps did fire (the suite is not vacuous), each a separate way in.
        let fired = strings("SELECT DISTINCT tag FROM public.adv_log ORDER BY 1");
        let mut v = violations(owner, &before, &a);
        for tag in [
            "trigger",
            "default",
            "check",
            "index",
            "view",
            "definer",
            "lower(varchar)",
            "=(varchar,varchar)",
            "adv_slug",
        ] {
            if !fired.iter().any(|f| f == tag) {
                v.push(format!("trap {tag} never fired (fired: {fired:?})"));
            }
        }
        assert!(v.is_empty(), "{v:#?}");
    }

    /// An authoring role registers migrations that try to escalate, plant a SECURITY DEFINER
    /// backdoor, change default privileges and grant themselves rights. Wherever a superuser
    /// provisions, migrates, verifies, reconciles or generates, they run only as a tenant owner
    /// the author can act as (its own tenants) or fail 42501.
    #[pg_test]
    fn authoring_role_migrations_never_run_with_rights_their_author_lacks() {
        stage();
        let author = "adv_author";
        app_role(author, "author");
        let before = privileges_of(author, CANARY);
        let mut a = Attempts(Vec::new());
        // The superuser's existing tenant and managed table.
        run("SELECT tenancy.create_tenant('adv_su_old')");
        run("CREATE TABLE public.adv_orgs (id int PRIMARY KEY)");
        run("SELECT tenancy.manage_tenant('public.adv_orgs', ARRAY['adv_org_', ':id'])");
        for (version, name, sql) in [
            // An innocent-looking table, and a DO block that escalates whoever runs it.
            (
                "0201",
                "audit_log",
                format!(
                    "CREATE TABLE audit_log (id int); DO $x$ BEGIN {} END $x$;",
                    escalate(author, "'author:do'")
                ),
            ),
            // A SECURITY DEFINER function anyone may call: it runs as whoever owns it.
            (
                "0202",
                "helpers",
                "CREATE FUNCTION backdoor(cmd text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
                 AS $b$ BEGIN EXECUTE cmd; END $b$;
                 GRANT USAGE ON SCHEMA @tenant@ TO PUBLIC;"
                    .to_string(),
            ),
            // Default privileges of whoever runs it: every table it creates from now on, anywhere.
            (
                "0203",
                "defaults",
                format!(
                    "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {author};
                     ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {author};"
                ),
            ),
        ] {
            a.sql_as(
                author,
                &format!(
                    "SELECT tenancy.add_migration('{version}', '{name}', {})",
                    lit(&sql)
                ),
            );
        }
        // The author's own tenant: its migrations run there, as the author.
        a.sql_as(author, "SELECT tenancy.create_tenant('adv_self')");
        // The superuser provisions and migrates.
        a.sql("SELECT tenancy.create_tenant('adv_su_new')");
        a.sql("SELECT * FROM tenancy.migrate_tenant('adv_su_old')");
        a.sql("INSERT INTO public.adv_orgs VALUES (1)");
        a.sql("SELECT * FROM tenancy.migrate_tenant('adv_self')");
        a.fleet();
        administer(&mut a, "adv_self");
        // A migration that grants itself rights outright.
        a.sql_as(
            author,
            &format!(
                "SELECT tenancy.add_migration('0204', 'self_grant', {})",
                lit(&format!(
                    "GRANT ALL ON public.adv_canary TO {author}; ALTER ROLE {author} SUPERUSER; GRANT adv_vault TO {author};"
                ))
            ),
        );
        a.sql("SELECT * FROM tenancy.migrate_tenant('adv_self')");
        a.sql("SELECT tenancy.create_tenant('adv_su_new2')");
        a.fleet();
        // The attacker calls every backdoor its migrations left behind.
        let backdoors = strings(
            "SELECT p.oid::regprocedure::text || '|' || p.proowner::regrole::text || '|' || n.nspowner::regrole::text
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = 'backdoor' ORDER BY 1",
        );
        let mut ownership = Vec::new();
        for b in &backdoors {
            let parts: Vec<&str> = b.split('|').collect();
            let (f, owner, schema_owner) = (parts[0], parts[1], parts[2]);
            if owner != schema_owner {
                ownership.push(format!(
                    "{f} owned by {owner}, its schema by {schema_owner}"
                ));
            }
            let call = f.replace("(text)", "");
            for cmd in [
                format!("ALTER ROLE {author} SUPERUSER"),
                format!("GRANT adv_vault TO {author}"),
                format!("GRANT SELECT ON public.adv_canary TO {author}"),
                "INSERT INTO public.adv_canary VALUES ('backdoor')".to_string(),
            ] {
                a.sql_as(author, &format!("SELECT {call}({})", lit(&cmd)));
            }
        }
        let fired = strings("SELECT DISTINCT tag FROM public.adv_log ORDER BY 1");
        let mut v = violations(author, &before, &a);
        v.extend(ownership);
        if !fired.iter().any(|f| f == "author:do") {
            v.push("the author's DO block never ran, not even in its own tenant".into());
        }
        if backdoors.is_empty() {
            v.push("no backdoor was created, not even in the author's own tenant".into());
        }
        assert!(v.is_empty(), "{v:#?}");
    }

    /// Review finding: describing a tenant (verify(deep), describe_schema, compare_schemas) put the
    /// tenant schema on the search_path while running as the caller, so an operator or function
    /// the owner planted with a better-matching signature ran as the superuser. Now the
    /// description runs as the schema's owner in a security-restricted operation.
    #[pg_test]
    fn describing_a_tenant_never_runs_its_owners_operators_as_the_caller() {
        crate::in_db::support::setup();
        use crate::in_db::support::run;
        use crate::in_db::trust_support::{app_role, as_role, rolsuper};
        app_role("adv_desc", "provision");
        as_role("adv_desc", "SELECT tenancy.create_tenant('adv_desc_t')");
        as_role(
            "adv_desc",
            r#"CREATE FUNCTION adv_desc_t.evil_eq(oid, regclass) RETURNS boolean LANGUAGE plpgsql AS $f$
               BEGIN
                 IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                   EXECUTE 'ALTER ROLE adv_desc SUPERUSER';
                 END IF;
                 RETURN $1 OPERATOR(pg_catalog.=) $2::oid;
               END $f$;
               CREATE OPERATOR adv_desc_t.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = adv_desc_t.evil_eq);
               CREATE FUNCTION adv_desc_t.quote_ident(name) RETURNS text LANGUAGE plpgsql AS $f$
               BEGIN
                 IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                   EXECUTE 'ALTER ROLE adv_desc SUPERUSER';
                 END IF;
                 RETURN pg_catalog.quote_ident($1::text);
               END $f$"#,
        );
        run("SELECT count(*) FROM tenancy.verify(deep => true)");
        run("SELECT tenancy.describe_schema('adv_desc_t')");
        run("SELECT count(*) FROM tenancy.compare_schemas('adv_desc_t', 'adv_desc_t')");
        assert!(
            !rolsuper("adv_desc"),
            "adv_desc became superuser by being described"
        );
    }

    /// Review finding: verify() and reconcile() read a managed table's rows as the caller with
    /// `column::text`, which the table's owner can route to its own cast function. Now the rows
    /// are read as the table's owner, with the types' output functions.
    #[pg_test]
    fn reading_a_managed_table_never_runs_its_owners_casts_as_the_caller() {
        crate::in_db::support::setup();
        use crate::in_db::support::run;
        use crate::in_db::trust_support::{app_role, as_role, rolsuper};
        app_role("adv_cast", "provision");
        run("CREATE SCHEMA adv_cast_s AUTHORIZATION adv_cast");
        as_role(
            "adv_cast",
            "CREATE TABLE adv_cast_s.orgs (id bigint PRIMARY KEY)",
        );
        run("SELECT tenancy.manage_tenant('adv_cast_s.orgs', ARRAY['adv_o_', ':id'])");
        as_role(
            "adv_cast",
            r#"CREATE TYPE adv_cast_s.k AS (v bigint);
               CREATE FUNCTION adv_cast_s.k_text(adv_cast_s.k) RETURNS text LANGUAGE plpgsql AS $f$
               BEGIN
                 IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                   EXECUTE 'ALTER ROLE adv_cast SUPERUSER';
                 END IF;
                 RETURN ($1).v::text;
               END $f$;
               CREATE CAST (adv_cast_s.k AS text) WITH FUNCTION adv_cast_s.k_text(adv_cast_s.k);
               ALTER TABLE adv_cast_s.orgs DISABLE TRIGGER USER;
               ALTER TABLE adv_cast_s.orgs RENAME COLUMN id TO id_old;
               ALTER TABLE adv_cast_s.orgs ADD COLUMN id adv_cast_s.k;
               INSERT INTO adv_cast_s.orgs VALUES (1, ROW(1))"#,
        );
        run("SELECT count(*) FROM tenancy.verify()");
        run("SELECT count(*) FROM tenancy.reconcile()");
        assert!(
            !rolsuper("adv_cast"),
            "adv_cast became superuser through its managed table"
        );
    }
}
