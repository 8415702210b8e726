//! Locks and deadlocks (issue 13, case 7; docs/concurrency.md): what one session can check of
//! `drop_tenant`'s up-front locking. The races themselves, with real sessions, are in
//! tests/isolation/specs/drop_locks.spec and tests/integration/concurrency.sh.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::in_db::support::*;

    fn schema_exists(name: &str) -> bool {
        one::<bool>(&format!(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = '{name}')"
        ))
        .unwrap()
    }

    /// pg_tenancy's own locks are object locks of a catalog's class: monitoring queries that
    /// describe every lock in `pg_locks` work while one is held (with the first form's class,
    /// `tenancy.tenants`' OID, PostgreSQL raised XX000 "invalid non-zero objectSubId").
    #[pg_test]
    fn its_locks_can_be_described() {
        setup();
        run("SELECT tenancy.create_tenant('described')");
        run("SELECT tenancy.migrate_tenant('described')");
        assert!(
            count("SELECT 1 FROM pg_locks WHERE locktype = 'object' AND classid = 'pg_class'::regclass AND objsubid = 1 AND pid = pg_backend_pid()") >= 1
        );
        count("SELECT pg_describe_object(classid, objid, objsubid), pg_identify_object(classid, objid, objsubid) FROM pg_locks WHERE locktype = 'object'");
    }

    #[pg_test]
    fn drop_lock_timeout_is_a_setting_and_an_argument() {
        setup();
        assert_eq!(
            one::<String>("SHOW tenancy.drop_lock_timeout").unwrap(),
            "5s"
        );
        run("SET LOCAL tenancy.drop_lock_timeout = '250ms'");
        assert_eq!(
            one::<String>("SHOW tenancy.drop_lock_timeout").unwrap(),
            "250ms"
        );
        // Nothing else holds the tenant: each form drops at once.
        for (i, call) in [
            "tenancy.drop_tenant('org_1')",
            "tenancy.drop_tenant('org_2', lock_timeout => '2s')",
            "tenancy.drop_tenant('org_3', lock_timeout => '0')",
            "tenancy.drop_tenant('org_4', NULL)",
            "tenancy.drop_tenant('org_5', lock_timeout => '0.1 ms')",
        ]
        .iter()
        .enumerate()
        {
            let t = format!("org_{}", i + 1);
            run(&format!("SELECT tenancy.create_tenant('{t}')"));
            run(&format!("SELECT {call}"));
            assert!(!schema_exists(&t), "{call}");
        }
        run("SELECT tenancy.create_tenant('org_9')");
        let f = fails(
            "SELECT tenancy.drop_tenant('org_9', lock_timeout => '-1s')",
            "22023",
        );
        assert_eq!(
            f.message,
            "tenancy.drop_tenant: lock_timeout must not be negative"
        );
        assert!(f.hint.contains("lock_timeout => '0'"), "{}", f.hint);
        let f = fails(
            "SELECT tenancy.drop_tenant('org_9', lock_timeout => '1 year')",
            "22023",
        );
        assert!(f.message.contains("at most"), "{}", f.message);
        assert!(schema_exists("org_9"));
    }

    /// The caller's own locks never stand in its way: a transaction that has just written the
    /// tenant (or created it) drops it.
    #[pg_test]
    fn a_transaction_that_uses_the_tenant_can_drop_it() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        run("INSERT INTO org_1.users (email) VALUES ('a@example.com')");
        run("SELECT count(*) FROM org_1.tasks");
        run("SELECT tenancy.drop_tenant('org_1', lock_timeout => '100ms')");
        assert!(!schema_exists("org_1"));
        assert_eq!(count("SELECT * FROM tenancy.all_tenants()"), 0);
    }

    /// A role that may not drop the tenant is refused before any lock is taken (locking someone
    /// else's tenant, even briefly, would let it stall that tenant's users).
    #[pg_test]
    fn only_the_owner_may_lock_a_tenant_to_drop_it() {
        setup();
        let owner = tenant_owner();
        run(&format!(
            "SELECT tenancy.create_tenant('org_1', owner => '{owner}')"
        ));
        run("DO $$ BEGIN CREATE ROLE tenancy_stranger NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        run("GRANT USAGE ON SCHEMA tenancy TO tenancy_stranger");
        run("GRANT EXECUTE ON FUNCTION tenancy.drop_tenant(text, interval) TO tenancy_stranger");
        run("SET LOCAL ROLE tenancy_stranger");
        let f = fails("SELECT tenancy.drop_tenant('org_1')", "42501");
        run("RESET ROLE");
        assert_eq!(
            f.message,
            format!("permission denied to drop tenant \"org_1\": the current role does not have the privileges of its owner \"{owner}\"")
        );
        assert!(schema_exists("org_1"));
    }

    /// The relations locked up front include every relation `DROP SCHEMA … CASCADE` then locks,
    /// inside the tenant and outside it: the shared table its foreign key references (whose
    /// foreign-key triggers the cascade removes), a shared table referencing a tenant table, a
    /// view over a tenant table, a shared table whose default uses a tenant sequence, a shared
    /// partitioned table with a partition in the tenant, a policy using a tenant function.
    #[pg_test]
    fn the_lock_set_foresees_every_relation_the_cascade_locks() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        run("CREATE TABLE public.refs_tenant (user_id bigint REFERENCES org_1.users (id))");
        run("CREATE VIEW public.tenant_view AS SELECT id FROM org_1.users");
        run("CREATE SEQUENCE org_1.counter");
        run("CREATE TABLE public.numbered (n bigint DEFAULT nextval('org_1.counter'))");
        run("CREATE TABLE public.events (tenant text, at date) PARTITION BY LIST (tenant)");
        run("CREATE TABLE org_1.events PARTITION OF public.events FOR VALUES IN ('org_1')");
        run("CREATE FUNCTION org_1.visible() RETURNS boolean LANGUAGE sql AS 'SELECT true'");
        run("CREATE TABLE public.guarded (x int)");
        run("CREATE POLICY p ON public.guarded USING (org_1.visible())");
        let oid = one::<pg_sys::Oid>("SELECT 'org_1'::regnamespace::oid").unwrap();
        let set = crate::db::catalog::drop_lock_set(oid);
        let name = |o: pg_sys::Oid| crate::db::catalog::relation_name(o);
        let outside: Vec<String> = set
            .iter()
            .filter(|(_, t)| !t)
            .map(|(o, _)| name(*o))
            .collect();
        for shared in [
            "public.plans",
            "public.refs_tenant",
            "public.tenant_view",
            "public.numbered",
            "public.events",
            "public.guarded",
        ] {
            assert!(
                outside.contains(&shared.to_string()),
                "{shared} not in {outside:?}"
            );
        }
        assert!(
            set.windows(2).all(|w| w[0].0.to_u32() < w[1].0.to_u32()),
            "not in OID order"
        );
        // Every relation of the schema (tables, indexes, sequences, TOAST tables), marked inside.
        let inside: Vec<String> = set
            .iter()
            .filter(|(_, t)| *t)
            .map(|(o, _)| name(*o))
            .collect();
        let relations = strings(
            "SELECT oid::regclass::text FROM pg_class WHERE relnamespace = 'org_1'::regnamespace",
        );
        assert!(relations.len() > 20, "{relations:?}");
        for r in &relations {
            assert!(inside.contains(r), "{r} not in {inside:?}");
        }
        assert_eq!(inside.len(), relations.len());
        // (That DROP SCHEMA does lock public.plans shows in tests/isolation/specs/drop_locks.spec,
        // with real sessions: here every table was created, and so locked, in this transaction.)
    }

    /// The 0.1.x SQL definition (one argument, symbol drop_tenant_wrapper) keeps working with
    /// the new library until ALTER EXTENSION UPDATE replaces it.
    #[pg_test]
    fn the_old_definition_still_works() {
        setup();
        run("CREATE FUNCTION pg_temp.drop_tenant_0_1(text) RETURNS void LANGUAGE c AS 'pg_tenancy', 'drop_tenant_wrapper'");
        run("SELECT tenancy.create_tenant('org_1')");
        run("SELECT pg_temp.drop_tenant_0_1('org_1')");
        assert!(!schema_exists("org_1"));
    }

    /// Found by review: `DROP SCHEMA … CASCADE` silently took a view in `public`, another tenant's
    /// view and another schema's foreign key with it. Refused, each named; nothing dropped.
    #[pg_test]
    fn a_drop_never_takes_objects_of_other_schemas_with_it() {
        setup();
        for t in ["da", "db", "dc"] {
            run(&format!("SELECT tenancy.create_tenant('{t}')"));
        }
        // The shipped migrations give each tenant a foreign key to public.plans: PostgreSQL's
        // triggers for it on plans are internal to the tenant's constraint and do not block.
        run("CREATE VIEW db.report AS SELECT count(*) AS n FROM da.users");
        run("CREATE TABLE db.keep_me (da_user bigint REFERENCES da.users (id))");
        run("CREATE VIEW public.all_users AS SELECT email FROM dc.users");
        let f = fails("SELECT tenancy.drop_tenant('da')", "2BP01");
        assert!(
            f.message
                .contains("tenant \"da\": 2 objects outside its schema"),
            "{f:?}"
        );
        assert!(f.detail.contains("view db.report"), "{f:?}");
        assert!(f.detail.contains("constraint"), "{f:?}");
        assert!(schema_exists("da"));
        let f = fails("SELECT tenancy.drop_tenant('dc')", "2BP01");
        assert!(f.detail.contains("view public.all_users"), "{f:?}");
        assert_eq!(
            count("SELECT * FROM tenancy.all_tenants() t WHERE t IN ('da', 'dc')"),
            2
        );
        // Once those are gone, each drops; a tenant with only its own objects always did.
        run("DROP VIEW db.report");
        run("DROP TABLE db.keep_me");
        run("DROP VIEW public.all_users");
        run("SELECT tenancy.drop_tenant('da')");
        run("SELECT tenancy.drop_tenant('dc')");
        assert!(!schema_exists("da") && !schema_exists("dc"));
        assert!(schema_exists("db"));
    }
}
