//! Snapshots (issue 15, "Baseline snapshots"): `build_snapshot` proves the squashed form of the
//! migration set against a replay; new tenants are built from it while it is fresh and for its
//! owner, with every migration in the ledger marked `from_snapshot`; anything the proof cannot
//! vouch for falls back to replay with the reason in `tenancy.snapshot_status`.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{
        all_versions, count, fails, ledger, one, run, setup, strings, tenant_owner,
    };
    use pgrx::prelude::*;

    fn status() -> (String, String) {
        (
            one::<String>("SELECT path FROM tenancy.snapshot_status").unwrap(),
            one::<String>("SELECT reason FROM tenancy.snapshot_status").unwrap(),
        )
    }

    fn build(owner: &str) -> (String, String) {
        // Snapshots are opt-in for now (docs/snapshots.md, "Known problems").
        run("SET LOCAL tenancy.use_snapshot = on");
        let path = one::<String>(&format!(
            "SELECT path FROM tenancy.build_snapshot('{owner}')"
        ))
        .unwrap();
        (path, status().1)
    }

    /// Builds, expecting the snapshot path (the reason otherwise).
    fn proven(owner: &str) {
        let (path, reason) = build(owner);
        assert_eq!(path, "snapshot", "{reason}");
    }

    fn from_snapshot(tenant: &str) -> i64 {
        count(&format!(
            "SELECT 1 FROM tenancy.ledger WHERE schema_name = '{tenant}' AND from_snapshot"
        ))
    }

    fn create(tenant: &str, owner: &str) {
        run(&format!(
            "SELECT tenancy.create_tenant('{tenant}', '{owner}')"
        ));
    }

    /// Everything a tenant holds that the generator's comparison and the snapshot's extras
    /// describe, for two tenants: no difference.
    fn assert_same(a: &str, b: &str) {
        let diffs = strings(&format!(
            "SELECT object || ': ' || difference FROM tenancy.compare_schemas('{a}', '{b}')"
        ));
        assert!(diffs.is_empty(), "{a} vs {b}: {diffs:?}");
        let extras = |t: &str| {
            one::<String>(&format!(
                "SELECT replace(tenancy._snapshot_extras('{t}')::text, '{t}', '@tenant@')"
            ))
            .unwrap()
        };
        assert_eq!(extras(a), extras(b));
        let refs = |t: &str| {
            strings(&format!(
                "SELECT c.relname || ' ' || r.name || ' ' || r.shared::text FROM tenancy.shared_references r \
                 JOIN pg_class c ON c.oid = r.referencing WHERE c.relnamespace = '{t}'::regnamespace ORDER BY 1"
            ))
        };
        assert_eq!(refs(a), refs(b));
    }

    #[pg_test]
    fn without_a_snapshot_tenants_replay_and_the_view_says_how_to_build_one() {
        setup();
        let (path, reason) = status();
        assert_eq!(path, "replay");
        assert!(reason.contains("tenancy.build_snapshot()"), "{reason}");
        create("plain", tenant_owner());
        assert_eq!(from_snapshot("plain"), 0);
    }

    /// The shipped set (with public.plans shared, so its last migration calls reference_shared)
    /// is proven, and a tenant built from the snapshot equals a replayed one: schema, shared
    /// reference, privileges, comments, data; its ledger lists every migration, from the snapshot.
    #[pg_test]
    fn shipped_set_is_proven_and_a_snapshot_tenant_equals_a_replayed_one() {
        setup();
        let owner = tenant_owner();
        run("SELECT tenancy.share_table('public.plans')");
        let (path, reason) = build(owner);
        assert_eq!(path, "snapshot", "{reason}");
        assert_eq!(status().0, "snapshot");
        assert!(reason.contains("tenancy_owner"), "{reason}");
        create("snap1", owner);
        assert_eq!(ledger("snap1"), all_versions());
        assert_eq!(from_snapshot("snap1") as usize, all_versions().len());
        run("SELECT tenancy.drop_snapshot()");
        create("rep1", owner);
        assert_eq!(from_snapshot("rep1"), 0);
        assert_same("snap1", "rep1");
        // The shared reference works in the snapshot tenant; no native foreign key was made.
        assert_eq!(
            count("SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = 'public.plans'::regclass"),
            0
        );
        fails(
            "INSERT INTO snap1.subscription (plan_id) VALUES (99)",
            "23503",
        );
        run("INSERT INTO snap1.subscription (plan_id) VALUES (1)");
        // Owned by the tenant's owner, as replayed objects are.
        assert_eq!(
            count("SELECT 1 FROM pg_class WHERE relnamespace = 'snap1'::regnamespace AND relowner <> 'tenancy_owner'::regrole"),
            0
        );
    }

    /// Enum values added by later migrations (ALTER TYPE … ADD VALUE, also BEFORE), rows,
    /// privileges, comments and a sequence position: the snapshot holds the final state and a new
    /// tenant is provisioned from it, equal to a replayed one.
    #[pg_test]
    fn enum_values_added_later_provision_from_the_snapshot() {
        setup();
        let owner = tenant_owner();
        run("DO $$ BEGIN CREATE ROLE snap_reader NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        run("SELECT tenancy.add_migration('9001', 'mood', $m$CREATE TYPE mood AS ENUM ('sad', 'ok')$m$)");
        run("SELECT tenancy.add_migration('9002', 'happy', $m$ALTER TYPE mood ADD VALUE 'happy'$m$)");
        run("SELECT tenancy.add_migration('9003', 'meh', $m$ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok'$m$)");
        run(r#"SELECT tenancy.add_migration('9004', 'feelings', $m$
            CREATE TABLE feelings (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, m mood NOT NULL DEFAULT 'happy',
                                   doubled int GENERATED ALWAYS AS (id * 2) STORED);
            INSERT INTO feelings (m) VALUES ('meh'), (DEFAULT);
            CREATE SEQUENCE tickets START 100;
            SELECT nextval('tickets');
            GRANT SELECT ON feelings TO snap_reader;
            GRANT USAGE ON TYPE mood TO snap_reader;
            COMMENT ON TABLE feelings IS 'how it''s going';
            COMMENT ON COLUMN feelings.m IS 'the mood'
        $m$)"#);
        let (path, reason) = build(owner);
        assert_eq!(path, "snapshot", "{reason}");
        create("snap2", owner);
        assert_eq!(from_snapshot("snap2") as usize, all_versions().len());
        assert_eq!(
            one::<String>("SELECT enum_range(NULL::snap2.mood)::text").unwrap(),
            "{sad,meh,ok,happy}"
        );
        assert_eq!(
            strings("SELECT m::text || ' ' || doubled FROM snap2.feelings ORDER BY id"),
            vec!["meh 2", "happy 4"]
        );
        assert_eq!(one::<i64>("SELECT nextval('snap2.tickets')"), Some(101));
        run("INSERT INTO snap2.feelings (m) VALUES ('ok')");
        assert_eq!(
            one::<i32>("SELECT max(id) FROM snap2.feelings"),
            Some(3),
            "the identity sequence continues after the copied rows"
        );
        run("SELECT tenancy.drop_snapshot()");
        create("rep2", owner);
        run("SELECT nextval('rep2.tickets')");
        run("INSERT INTO rep2.feelings (m) VALUES ('ok')");
        assert_same("snap2", "rep2");
        assert_eq!(
            one::<String>("SELECT obj_description('snap2.feelings'::regclass, 'pg_class')")
                .unwrap(),
            "how it's going"
        );
    }

    /// An object kind the comparison does not cover (a domain, an operator…) makes the set
    /// unprovable: new tenants replay, and the view says why.
    #[pg_test]
    fn an_object_kind_the_proof_cannot_compare_falls_back_to_replay() {
        setup();
        let owner = tenant_owner();
        run("SELECT tenancy.add_migration('9101', 'domain', $m$CREATE DOMAIN positive AS int CHECK (VALUE > 0)$m$)");
        let (path, reason) = build(owner);
        assert_eq!(path, "replay");
        assert!(reason.contains("domain: positive"), "{reason}");
        assert_eq!(status(), ("replay".to_string(), reason));
        create("dom1", owner);
        assert_eq!(from_snapshot("dom1"), 0);
        assert_eq!(ledger("dom1"), all_versions());
    }

    /// Rows stamped with now() would be the build's in every tenant: replay.
    #[pg_test]
    fn rows_from_volatile_functions_fall_back_to_replay() {
        setup();
        run("SELECT tenancy.add_migration('9201', 'stamps', $m$CREATE TABLE stamps (at timestamptz); INSERT INTO stamps VALUES (now())$m$)");
        let (path, reason) = build(tenant_owner());
        assert_eq!(path, "replay");
        assert!(reason.contains("now()"), "{reason}");
    }

    /// Effects outside the tenant's schema are not repeated by a snapshot: replay.
    #[pg_test]
    fn effects_outside_the_schema_fall_back_to_replay() {
        setup();
        tenant_owner();
        run("CREATE TABLE public.audit (what text)");
        run("GRANT INSERT ON public.audit TO tenancy_owner");
        run("SELECT tenancy.add_migration('9301', 'audit', $m$INSERT INTO public.audit VALUES ('created')$m$)");
        let (path, reason) = build(tenant_owner());
        assert_eq!(path, "replay");
        assert!(reason.contains("public.audit"), "{reason}");
        run("SELECT tenancy.remove_migration('9301')");
        run("GRANT CREATE ON SCHEMA public TO tenancy_owner");
        run("SELECT tenancy.add_migration('9302', 'outside', $m$CREATE TABLE public.side_effect (id int)$m$)");
        let (path, reason) = build(tenant_owner());
        assert_eq!(path, "replay");
        assert!(reason.contains("outside the tenant's schema"), "{reason}");
    }

    /// Changing the migration set rebuilds the snapshot when the caller may act as its owner
    /// (add_migration and remove_migration as a superuser here); anything else the fingerprint
    /// covers (here: sharing public.plans) makes it stale: never used until built again.
    #[pg_test]
    fn rebuilt_when_migrations_change_and_never_used_stale() {
        setup();
        let owner = tenant_owner();
        proven(owner);
        run("SELECT tenancy.add_migration('9401', 'later', $m$CREATE TABLE later (id int)$m$)");
        let (path, reason) = status();
        assert_eq!(path, "snapshot", "{reason}");
        assert_eq!(
            one::<i32>("SELECT migrations FROM tenancy.snapshot_status"),
            Some(all_versions().len() as i32)
        );
        create("fresh1", owner);
        assert_eq!(from_snapshot("fresh1") as usize, all_versions().len());
        assert_eq!(count("SELECT 1 FROM fresh1.later"), 0);
        run("SELECT tenancy.share_table('public.plans')");
        let (path, reason) = status();
        assert_eq!(path, "replay");
        assert!(reason.contains("stale"), "{reason}");
        create("stale1", owner);
        assert_eq!(from_snapshot("stale1"), 0);
        assert_eq!(ledger("stale1"), all_versions());
        assert_eq!(
            count("SELECT 1 FROM tenancy.shared_references WHERE referencing = 'stale1.subscription'::regclass"),
            1
        );
        run("SELECT tenancy.add_migration('9402', 'gone', $m$CREATE TABLE gone (id int)$m$)");
        assert_eq!(status().0, "snapshot");
        run("SELECT tenancy.remove_migration('9402')");
        let (path, reason) = status();
        assert_eq!(path, "snapshot", "{reason}");
        create("fresh2", owner);
        assert_eq!(from_snapshot("fresh2") as usize, all_versions().len());
        assert_same("fresh2", "stale1");
    }

    /// Every reader of the ledger sees a snapshot tenant as fully migrated: status, verify (also
    /// deep), migrate_tenant and a fleet step have nothing to do.
    #[pg_test]
    fn readers_treat_snapshot_tenants_as_fully_migrated() {
        setup();
        let owner = tenant_owner();
        proven(owner);
        create("snap3", owner);
        assert_eq!(from_snapshot("snap3") as usize, all_versions().len());
        assert_eq!(
            one::<String>("SELECT state FROM tenancy.status WHERE schema_name = 'snap3'").unwrap(),
            "up_to_date"
        );
        assert_eq!(count("SELECT 1 FROM tenancy.migrate_tenant('snap3')"), 0);
        let problems = strings(
            "SELECT coalesce(schema_name::text, '') || ': ' || problem FROM tenancy.verify(deep => true) WHERE schema_name = 'snap3'",
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    /// Trust: the snapshot is pg_tenancy's (only the extension's owner writes it); a build runs
    /// the migrations as the owner it is for, which the caller must be able to act as; a snapshot
    /// for one owner is never used for another's tenants.
    #[pg_test]
    fn the_snapshot_cannot_be_used_to_run_sql_as_someone_else() {
        setup();
        let owner = tenant_owner();
        run("DO $$ BEGIN CREATE ROLE snap_admin NOLOGIN; CREATE ROLE other_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        run("GRANT SELECT, REFERENCES ON public.plans TO other_owner");
        run("SELECT tenancy.grant_admin('snap_admin')");
        proven(owner);
        run("SET LOCAL ROLE snap_admin");
        fails_table_write("UPDATE tenancy.snapshot SET steps = '[{\"sql\": \"SELECT 1\"}]'");
        fails_table_write("DELETE FROM tenancy.snapshot");
        let f = fails(
            "SELECT * FROM tenancy.build_snapshot('tenancy_owner')",
            "42501",
        );
        assert!(f.message.contains("tenancy_owner"), "{}", f.message);
        run("RESET ROLE");
        run("SET LOCAL ROLE tenancy_owner");
        fails_table_write("INSERT INTO tenancy.ledger (schema_name, version, name, checksum, duration, from_snapshot) VALUES ('x', '1', 'x', 'x', '0', true)");
        run("RESET ROLE");
        // Built for tenancy_owner: a tenant of another owner replays.
        create("theirs", "other_owner");
        assert_eq!(from_snapshot("theirs"), 0);
        // The steps ran as the tenant's owner.
        run("SELECT tenancy.add_migration('9501', 'who', $m$CREATE TABLE who (u text DEFAULT current_user); INSERT INTO who DEFAULT VALUES$m$)");
        proven(owner);
        create("mine", owner);
        assert_eq!(from_snapshot("mine") as usize, all_versions().len());
        assert_eq!(
            one::<String>("SELECT u FROM mine.who").unwrap(),
            "tenancy_owner"
        );
    }

    fn fails_table_write(sql: &str) {
        crate::in_db::support::fails_bare(sql, "42501");
    }
}
