//! Native foreign keys to shared tables in tenant migrations are declared as shared references
//! (issue 15, src/db/shared_fk.rs) where a superuser set `tenancy.convert_shared_foreign_keys`
//! (then a sign-up never creates a foreign key on a shared table only to drop it again, which
//! held ACCESS EXCLUSIVE on public.plans until the sign-up committed); only where the reference
//! enforces exactly the same. Off by default: migrations get the native keys they write.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails_bare, one, run, setup, strings, tenant_owner};
    use pgrx::prelude::*;

    fn deleted(catalog: &str) -> i64 {
        count(&format!(
            "SELECT g FROM generate_series(1, pg_stat_get_xact_tuples_deleted('{catalog}'::regclass)) g"
        ))
    }

    /// The defect: on main a sign-up replays 0005 (a native foreign key: SHARE ROW EXCLUSIVE on
    /// plans and two triggers on it), then 20261127000000 drops it (ACCESS EXCLUSIVE on plans
    /// until commit, so every application query on plans waits for the sign-up). The locks
    /// themselves are measured by the scale curve (bench/bench.py); here (one transaction, which
    /// created plans itself) the key's creation and drop show as deleted catalog rows.
    #[pg_test]
    fn a_signup_neither_creates_nor_drops_a_foreign_key_on_a_shared_table() {
        setup();
        let owner = tenant_owner();
        run("SET LOCAL tenancy.convert_shared_foreign_keys = on");
        run("SELECT tenancy.share_table('public.plans')");
        let (triggers, constraints) = (deleted("pg_trigger"), deleted("pg_constraint"));
        run(&format!("SELECT tenancy.create_tenant('acme', '{owner}')"));
        assert_eq!(
            deleted("pg_trigger"),
            triggers,
            "no trigger created and dropped"
        );
        assert_eq!(
            deleted("pg_constraint"),
            constraints,
            "no constraint created and dropped"
        );
        assert_eq!(
            strings(
                "SELECT referencing::text || ' ' || columns::text FROM tenancy.shared_references"
            ),
            vec!["acme.subscription {plan_id}"]
        );
        assert_eq!(
            count("SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.plans'::regclass"),
            2
        );
        // The reference holds as before.
        run("INSERT INTO acme.subscription (plan_id) VALUES (1)");
        let f = fails_bare("UPDATE acme.subscription SET plan_id = 99", "23503");
        assert!(f.message.contains("acme"), "{}", f.message);
        fails_bare("DELETE FROM public.plans WHERE id = 1", "23503");
        // What a replayed sign-up did before: a native key, then reference_shared dropping it.
        // The counts see it.
        let (triggers, constraints) = (deleted("pg_trigger"), deleted("pg_constraint"));
        run("ALTER TABLE acme.subscription ADD COLUMN other_plan bigint REFERENCES public.plans");
        run("SELECT tenancy.reference_shared('acme.subscription', ARRAY['other_plan'], 'public.plans')");
        assert_eq!(deleted("pg_trigger"), triggers + 4);
        assert_eq!(deleted("pg_constraint"), constraints + 1);
    }

    /// Every way a migration writes a foreign key to a shared table becomes a shared reference
    /// when the reference enforces the same; the others keep their native foreign key as written.
    #[pg_test]
    fn migration_foreign_keys_to_a_shared_table() {
        setup();
        let owner = tenant_owner();
        run("SET LOCAL tenancy.convert_shared_foreign_keys = on");
        run("SELECT tenancy.share_table('public.plans')");
        run("CREATE TABLE public.regions (code text PRIMARY KEY)");
        run(&format!("GRANT REFERENCES ON public.regions TO {owner}"));
        run(
            r#"SELECT tenancy.add_migration('30000000000001', 'refs', $m$
                CREATE TABLE a (id int PRIMARY KEY, plan bigint REFERENCES public.plans);
                CREATE TABLE b (id int PRIMARY KEY, plan bigint, CONSTRAINT b_plan FOREIGN KEY (plan) REFERENCES public.plans (id));
                CREATE TABLE c (id int PRIMARY KEY);
                ALTER TABLE c ADD COLUMN plan bigint REFERENCES public.plans;
                CREATE TABLE d (id int PRIMARY KEY, plan bigint);
                ALTER TABLE d ADD FOREIGN KEY (plan) REFERENCES public.plans;
                CREATE TABLE e (id int PRIMARY KEY, plan bigint REFERENCES public.plans ON DELETE CASCADE);
                CREATE TABLE f (id int PRIMARY KEY, plan bigint REFERENCES public.plans DEFERRABLE);
                CREATE TABLE g (id int PRIMARY KEY, plan bigint);
                ALTER TABLE g ADD FOREIGN KEY (plan) REFERENCES public.plans NOT VALID;
                CREATE TABLE h (id int PRIMARY KEY, plan int REFERENCES public.plans);
                CREATE TABLE i (id int PRIMARY KEY, region text REFERENCES public.regions);
                CREATE TABLE j (id int PRIMARY KEY, a_id int REFERENCES a)
            $m$)"#,
        );
        run(&format!("SELECT tenancy.create_tenant('acme', '{owner}')"));
        assert_eq!(
            strings("SELECT referencing::text FROM tenancy.shared_references ORDER BY 1"),
            vec!["acme.a", "acme.b", "acme.d", "acme.subscription"]
        );
        // Kept native: ADD COLUMN … REFERENCES (PostgreSQL adds that key inside the ALTER TABLE,
        // past the hook), an action, DEFERRABLE, NOT VALID, another type, an unshared table, a
        // key within the tenant.
        assert_eq!(
            strings(
                "SELECT conrelid::regclass::text || ' ' || confrelid::regclass::text FROM pg_constraint \
                 WHERE contype = 'f' AND conrelid::regclass::text = ANY \
                   ('{acme.a,acme.b,acme.c,acme.d,acme.e,acme.f,acme.g,acme.h,acme.i,acme.j}') ORDER BY 1"
            ),
            vec![
                "acme.c plans",
                "acme.e plans",
                "acme.f plans",
                "acme.g plans",
                "acme.h plans",
                "acme.i regions",
                "acme.j acme.a"
            ]
        );
        for t in ["a", "b", "d"] {
            let f = fails_bare(
                &format!("INSERT INTO acme.{t} (id, plan) VALUES (1, 42)"),
                "23503",
            );
            assert!(f.message.contains("tenant \"acme\""), "{t}: {}", f.message);
        }
    }

    /// Where the table is not shared, migrations keep their native foreign keys (as on Citus).
    #[pg_test]
    fn an_unshared_table_keeps_native_foreign_keys() {
        setup();
        let owner = tenant_owner();
        run(&format!("SELECT tenancy.create_tenant('acme', '{owner}')"));
        assert_eq!(count("SELECT 1 FROM tenancy.shared_references"), 0);
        assert_eq!(
            count("SELECT 1 FROM pg_constraint WHERE contype = 'f' AND conrelid = 'acme.subscription'::regclass"),
            1
        );
    }

    /// Off by default: a migration's foreign key to a shared table is native, as written; a
    /// later migration's reference_shared converts it (the shipped 0005 + 20261127000000 do).
    #[pg_test]
    fn user_migrations_keep_native_keys_unless_asked() {
        setup();
        let owner = tenant_owner();
        run("SELECT tenancy.share_table('public.plans')");
        run("SELECT tenancy.add_migration('30000000000001', 'k', $m$CREATE TABLE k (id int PRIMARY KEY, plan bigint REFERENCES public.plans)$m$)");
        run("SELECT tenancy.add_migration('30000000000002', 'm', $m$CREATE TABLE m (id int PRIMARY KEY, plan bigint REFERENCES public.plans)$m$)");
        run("SELECT tenancy.add_migration('30000000000003', 'm2', $m$SELECT tenancy.reference_shared('@tenant@.m', ARRAY['plan'], 'public.plans')$m$)");
        run(&format!("SELECT tenancy.create_tenant('acme', '{owner}')"));
        assert_eq!(
            strings("SELECT referencing::text FROM tenancy.shared_references ORDER BY 1"),
            vec!["acme.m", "acme.subscription"]
        );
        assert_eq!(
            count(
                "SELECT 1 FROM pg_constraint WHERE contype = 'f' AND conrelid = 'acme.k'::regclass"
            ),
            1
        );
        assert_eq!(
            count(
                "SELECT 1 FROM pg_constraint WHERE contype = 'f' AND conrelid = 'acme.m'::regclass"
            ),
            0
        );
    }

    /// The hostile review's cases: whatever the reference could not mirror exactly stays native
    /// (no statement PostgreSQL accepts fails, no existing key is dropped), and reference_shared
    /// refuses a key whose collations would compare differently.
    #[pg_test]
    fn what_a_reference_cannot_mirror_stays_native() {
        setup();
        let owner = tenant_owner();
        run("SET LOCAL tenancy.convert_shared_foreign_keys = on");
        run("SELECT tenancy.share_table('public.plans')");
        run("CREATE TABLE public.pair (a int, b int, PRIMARY KEY (a, b))");
        run("SELECT tenancy.share_table('public.pair')");
        run(&format!("GRANT REFERENCES ON public.pair TO {owner}"));
        run(
            r#"SELECT tenancy.add_migration('30000000000011', 'cases', $m$
            CREATE TABLE d1 (id int PRIMARY KEY, plan bigint REFERENCES public.plans,
                             CONSTRAINT d1_again FOREIGN KEY (plan) REFERENCES public.plans);
            CREATE TABLE d3 (id int PRIMARY KEY, a_b bigint REFERENCES public.plans, a int, b int,
                             FOREIGN KEY (a, b) REFERENCES public.pair);
            CREATE TABLE d2 (id int PRIMARY KEY, plan int);
            ALTER TABLE d2 ADD FOREIGN KEY (plan) REFERENCES public.plans, ALTER COLUMN plan TYPE bigint;
            CREATE TABLE d4 (id int PRIMARY KEY, plan bigint);
            ALTER TABLE d4 ADD CONSTRAINT d4_native FOREIGN KEY (plan) REFERENCES public.plans NOT VALID;
            ALTER TABLE d4 ADD CONSTRAINT d4_second FOREIGN KEY (plan) REFERENCES public.plans
        $m$)"#,
        );
        run(&format!("SELECT tenancy.create_tenant('acme', '{owner}')"));
        let native = |t: &str| {
            count(&format!(
                "SELECT 1 FROM pg_constraint WHERE contype = 'f' AND conrelid = 'acme.{t}'::regclass"
            ))
        };
        assert_eq!(native("d1"), 2, "two keys on the same column: both native");
        assert_eq!(
            native("d2"),
            1,
            "a type changed in the same statement: native"
        );
        assert_eq!(
            native("d4"),
            2,
            "an existing native key is neither dropped nor joined"
        );
        assert_eq!(
            native("d3"),
            2,
            "different keys whose names would collide: native"
        );
        assert_eq!(
            count("SELECT 1 FROM tenancy.shared_references WHERE referencing::text LIKE 'acme.d%'"),
            0
        );
        // Collations: a nondeterministic one on either side (ICU builds only).
        let icu = one::<bool>(
            "SELECT pg_temp.try_sql($c$CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)$c$) IS NULL",
        );
        if icu != Some(true) {
            // The relocatable builds of some majors have no ICU.
            pgrx::notice!("skipped: ICU is not supported in this build");
            return;
        }
        run("CREATE TABLE public.regions (code text COLLATE public.ci PRIMARY KEY)");
        run("INSERT INTO public.regions VALUES ('abc')");
        run("SELECT tenancy.share_table('public.regions')");
        run(&format!("GRANT REFERENCES ON public.regions TO {owner}"));
        run("CREATE TABLE acme.rt (id int PRIMARY KEY, code text)");
        run(&format!("ALTER TABLE acme.rt OWNER TO {owner}"));
        let f = fails_bare(
            "SELECT tenancy.reference_shared('acme.rt', ARRAY['code'], 'public.regions')",
            "42P21",
        );
        assert!(f.message.contains("collation"), "{}", f.message);
        run("SELECT tenancy.add_migration('30000000000012', 'rt2', $m$CREATE TABLE rt2 (id int PRIMARY KEY, code text REFERENCES public.regions)$m$)");
        run("SELECT tenancy.migrate_tenant('acme')");
        assert_eq!(
            native("rt2"),
            1,
            "collations that compare differently: native"
        );
    }
}
