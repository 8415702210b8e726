//! Managed tables follow DDL (issue 13, cases 4, 5 and the managed-table items of 8): a dropped
//! managed table, a changed template, pg_tenancy's own tables, TRUNCATE of partitions, tenants
//! without a row, detached tenants coming back, and rows whose tenant is gone.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{
        all_versions, count, fails, ledger, lit, one, run, schema_exists, setup, strings,
        tenant_owner,
    };
    use crate::in_db::trust_support::{app_role, as_role, attempt_as, grant};
    use pgrx::prelude::*;

    fn organizations(on_delete: &str) {
        run("CREATE TABLE public.organizations (id bigint PRIMARY KEY, name text)");
        run(&format!(
            "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => {}, owner => {})",
            lit(on_delete),
            lit(tenant_owner())
        ));
    }

    fn problems() -> Vec<String> {
        strings("SELECT coalesce(schema_name::text, '-') || ': ' || problem FROM tenancy.verify()")
    }

    fn registered(name: &str) -> bool {
        count(&format!(
            "SELECT 1 FROM tenancy.tenants WHERE schema_name = {}",
            lit(name)
        )) == 1
    }

    // Case 4 -----------------------------------------------------------------------------------

    #[pg_test]
    fn case4_dropping_a_managed_table_unregisters_it_and_its_tenants_stay() {
        setup();
        organizations("drop");
        run("INSERT INTO organizations (id) VALUES (1), (2)");
        run("DROP TABLE organizations");
        assert_eq!(count("SELECT 1 FROM tenancy.managed_tables"), 0);
        assert_eq!(problems(), Vec::<String>::new());
        assert_eq!(count("SELECT * FROM tenancy.reconcile()"), 0);
        // The tenants stay, registered and migrated.
        assert!(registered("org_1") && registered("org_2"));
        assert!(schema_exists("org_1"));
        assert_eq!(ledger("org_2"), all_versions());
        // Also when the table goes with its schema.
        run("CREATE SCHEMA app");
        run("CREATE TABLE app.shops (id int PRIMARY KEY)");
        run("SELECT tenancy.manage_tenant('app.shops', ARRAY['shop_', ':id'])");
        run("SET LOCAL client_min_messages = warning");
        run("DROP SCHEMA app CASCADE");
        assert_eq!(count("SELECT 1 FROM tenancy.managed_tables"), 0);
    }

    #[pg_test]
    fn case4_a_dangling_registration_is_reported_skipped_and_removable() {
        setup();
        organizations("detach");
        run("INSERT INTO organizations (id) VALUES (1)");
        run("CREATE TABLE public.shops (id int PRIMARY KEY)");
        run(&format!(
            "SELECT tenancy.manage_tenant('shops', ARRAY['shop_', ':id'], owner => {})",
            lit(tenant_owner())
        ));
        run("INSERT INTO shops VALUES (7)");
        let oid = one::<pg_sys::Oid>("SELECT 'organizations'::regclass::oid")
            .unwrap()
            .to_u32();
        // Event triggers do not fire in replica mode (nor when disabled).
        run("SET LOCAL session_replication_role = replica");
        run("DROP TABLE organizations");
        run("RESET session_replication_role");
        let p = problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(&format!("-: managed table with OID {oid} no longer exists"))
                && p[0].contains(&format!("tenancy.unmanage_tenant({oid})")),
            "{p:?}"
        );
        // reconcile reports it too and still does its work for the other tables.
        run("SET LOCAL session_replication_role = replica");
        run("INSERT INTO shops VALUES (8)");
        run("RESET session_replication_role");
        let r = strings("SELECT coalesce(schema_name, '-') || ': ' || action FROM tenancy.reconcile(dry_run => false) ORDER BY 1");
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(
            r[0].starts_with("-: left alone: managed table with OID"),
            "{r:?}"
        );
        assert!(r[1].starts_with("shop_8: created"), "{r:?}");
        // unmanage_tenant accepts it.
        run(&format!("SELECT tenancy.unmanage_tenant({oid})"));
        assert_eq!(
            strings("SELECT table_name::text FROM tenancy.managed_tables"),
            vec!["shops"]
        );
        assert_eq!(problems(), Vec::<String>::new());
        // An OID that is no table and no registration is still refused.
        fails(&format!("SELECT tenancy.unmanage_tenant({oid})"), "42P01");
    }

    // Case 5 -----------------------------------------------------------------------------------

    #[pg_test]
    fn case5_changing_the_template_while_rows_exist_is_refused_with_the_count() {
        setup();
        organizations("keep");
        run("INSERT INTO organizations (id) VALUES (1), (2), (3)");
        let f = fails(
            "SELECT tenancy.manage_tenant('organizations', ARRAY['o_', ':id'])",
            "55000",
        );
        assert!(
            f.message.contains("public.organizations")
                && f.message.contains("3 rows")
                && f.message.contains("['o_', ':id']"),
            "{}",
            f.message
        );
        assert!(
            f.hint.contains(r#"tenancy.rename_tenant(pg_catalog.concat('org_', "id"), pg_catalog.concat('o_', "id")) FROM public.organizations"#),
            "{}",
            f.hint
        );
        // Nothing changed.
        assert_eq!(
            strings("SELECT template::text FROM tenancy.managed_tables"),
            vec!["{org_,:id}"]
        );
        // The same template with another policy is fine.
        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'detach')");
        // The hint's way: rename the tenants, then change the template, in one transaction.
        run("SELECT tenancy.rename_tenant(pg_catalog.concat('org_', id), pg_catalog.concat('o_', id)) FROM public.organizations");
        run("SELECT tenancy.manage_tenant('organizations', ARRAY['o_', ':id'], on_delete => 'detach')");
        run("UPDATE organizations SET id = 10 WHERE id = 1");
        assert!(registered("o_10") && !registered("o_1"));
        run("DELETE FROM organizations WHERE id = 2");
        assert!(!registered("o_2") && schema_exists("o_2"));
        // An empty table changes template freely.
        run("CREATE TABLE public.shops (id int PRIMARY KEY, region text)");
        run("SELECT tenancy.manage_tenant('shops', ARRAY['shop_', ':id'])");
        run("SELECT tenancy.manage_tenant('shops', ARRAY['s_', ':region', '_', ':id'])");
    }

    // Case 8 -----------------------------------------------------------------------------------

    #[pg_test]
    fn case8_pg_tenancys_own_tables_and_extension_members_cannot_be_managed() {
        setup();
        for t in [
            "tenancy.tenants",
            "tenancy.ledger",
            "tenancy.managed_table_settings",
        ] {
            let f = fails(
                &format!(
                    "SELECT tenancy.manage_tenant({}, ARRAY['x_', ':schema_name'])",
                    lit(t)
                ),
                "0A000",
            );
            assert!(
                f.message.contains(t) && f.message.contains("extension \"pg_tenancy\""),
                "{}",
                f.message
            );
            assert!(f.hint.contains("CREATE TABLE"), "{}", f.hint);
        }
        assert_eq!(count("SELECT 1 FROM tenancy.managed_tables"), 0);
        assert_eq!(
            count("SELECT 1 FROM pg_trigger WHERE tgrelid = 'tenancy.tenants'::regclass AND tgname LIKE 'tenancy_%'"),
            0
        );
        // A member of any extension.
        run("CREATE TABLE public.ext_member (id int PRIMARY KEY)");
        run("ALTER EXTENSION pg_tenancy ADD TABLE public.ext_member");
        fails(
            "SELECT tenancy.manage_tenant('ext_member', ARRAY['m_', ':id'])",
            "0A000",
        );
        run("ALTER EXTENSION pg_tenancy DROP TABLE public.ext_member");
        // create_tenant keeps working.
        run(&format!(
            "SELECT tenancy.create_tenant('acme', owner => {})",
            lit(tenant_owner())
        ));
    }

    fn partitioned_events(on_delete: &str) {
        run("CREATE TABLE public.events (region text NOT NULL, id int NOT NULL, PRIMARY KEY (region, id)) PARTITION BY LIST (region)");
        run("CREATE TABLE public.events_eu PARTITION OF public.events FOR VALUES IN ('eu') PARTITION BY RANGE (id)");
        run("CREATE TABLE public.events_eu_low PARTITION OF public.events_eu FOR VALUES FROM (0) TO (100)");
        run(&format!(
            "SELECT tenancy.manage_tenant('events', ARRAY['ev_', ':region', '_', ':id'], on_delete => {}, owner => {})",
            lit(on_delete),
            lit(tenant_owner())
        ));
    }

    #[pg_test]
    fn case8_the_truncate_guard_covers_partitions_and_later_ones() {
        setup();
        partitioned_events("drop");
        run("INSERT INTO events VALUES ('eu', 1)");
        for t in ["events", "events_eu", "events_eu_low"] {
            let f = fails(&format!("TRUNCATE {t}"), "55000");
            assert!(
                f.message.contains(t) && f.hint.contains("DELETE"),
                "{t}: {} / {}",
                f.message,
                f.hint
            );
        }
        // Partitions created or attached later, at any depth.
        run("CREATE TABLE public.events_us PARTITION OF public.events FOR VALUES IN ('us')");
        run("CREATE TABLE public.events_eu_high (region text NOT NULL, id int NOT NULL)");
        run("ALTER TABLE public.events_eu ATTACH PARTITION public.events_eu_high FOR VALUES FROM (100) TO (1000)");
        run("INSERT INTO events VALUES ('us', 2), ('eu', 500)");
        assert!(schema_exists("ev_us_2") && schema_exists("ev_eu_500"));
        for t in ["events_us", "events_eu_high"] {
            let f = fails(&format!("TRUNCATE {t}"), "55000");
            assert!(f.message.contains(t), "{}", f.message);
        }
        assert!(schema_exists("ev_eu_1") && schema_exists("ev_eu_500"));
        assert_eq!(count("SELECT 1 FROM events"), 3);
        // A detached partition is a table of its own again.
        run("ALTER TABLE public.events DETACH PARTITION public.events_us");
        run("TRUNCATE events_us");
        assert!(schema_exists("ev_us_2"));
        // Under another policy the guard is off, partitions included.
        run("SELECT tenancy.manage_tenant('events', ARRAY['ev_', ':region', '_', ':id'], on_delete => 'keep')");
        run("TRUNCATE events_eu_low");
        assert!(schema_exists("ev_eu_1"));
    }

    #[pg_test]
    fn case8_a_partition_added_by_the_tables_owner_gets_the_guard_and_public_cannot_unregister() {
        setup();
        partitioned_events("drop");
        // Adding a partition clones the row triggers, which needs EXECUTE on tenancy._managed_row:
        // the admin level. The guard is created as this role, which owns the partition.
        run("CREATE ROLE tenancy_plain NOLOGIN");
        grant("tenancy_plain", "admin");
        run("GRANT CREATE ON SCHEMA public TO tenancy_plain");
        run("ALTER TABLE public.events OWNER TO tenancy_plain");
        run("ALTER TABLE public.events_eu OWNER TO tenancy_plain");
        as_role(
            "tenancy_plain",
            "CREATE TABLE public.events_eu_mid PARTITION OF public.events_eu FOR VALUES FROM (100) TO (200)",
        );
        let r = attempt_as("tenancy_plain", "TRUNCATE public.events_eu_mid");
        assert_eq!(r.as_ref().map(|r| r.0.as_str()), Some("55000"), "{r:?}");
        // Anyone may call what the event triggers call: it records only what the catalog says.
        run("CREATE ROLE tenancy_nobody NOLOGIN");
        as_role(
            "tenancy_nobody",
            "SELECT tenancy._managed_ddl(ARRAY['public.events'::regclass::oid, 'public.events_eu_mid'::regclass::oid])",
        );
        assert_eq!(
            strings("SELECT table_name::text FROM tenancy.managed_tables"),
            vec!["events"]
        );
        as_role("tenancy_plain", "DROP TABLE public.events_eu_mid");
        assert_eq!(count("SELECT 1 FROM tenancy.managed_tables"), 1);
    }

    #[pg_test]
    fn case8_verify_reports_registered_tenants_of_a_managed_table_without_a_row() {
        setup();
        organizations("detach");
        run("INSERT INTO organizations (id) VALUES (1), (2)");
        run("TRUNCATE organizations");
        let p = problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("org_1: a tenant of managed table public.organizations")
                && p[0].contains("no row")
                && p[0].contains("tenancy.detach_tenant('org_1')"),
            "{p:?}"
        );
        // Following the hint: detach it, or put its row back.
        run("SELECT tenancy.detach_tenant('org_1')");
        assert!(!registered("org_1") && schema_exists("org_1"));
        run("SELECT tenancy.detach_tenant('org_2')");
        run("INSERT INTO organizations (id) VALUES (2)");
        assert!(registered("org_2"));
        assert_eq!(problems(), Vec::<String>::new());
        // Rows deleted with the triggers bypassed under 'drop'.
        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'drop')");
        run("SET LOCAL session_replication_role = replica");
        run("DELETE FROM organizations WHERE id = 2");
        run("RESET session_replication_role");
        let p = problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("org_2: a tenant of managed table public.organizations")
                && p[0].contains("tenancy.drop_tenant('org_2')"),
            "{p:?}"
        );
        // Under 'keep' a tenant without a row is what the policy says: not a problem.
        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'keep')");
        assert_eq!(problems(), Vec::<String>::new());
    }

    #[pg_test]
    fn case8_re_inserting_the_row_of_a_detached_tenant_re_adopts_it_with_its_ledger() {
        setup();
        organizations("detach");
        run("INSERT INTO organizations (id) VALUES (1)");
        run("INSERT INTO org_1.users (email) VALUES ('a@example.com')");
        let before = strings("SELECT version || ' ' || applied_at::text || ' ' || baselined FROM tenancy.ledger WHERE schema_name = 'org_1' ORDER BY version");
        let oid = one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'org_1'");
        run("DELETE FROM organizations");
        assert!(!registered("org_1") && schema_exists("org_1"));
        // A migration added while it was away.
        run("SELECT tenancy.add_migration('0100', 'notes', 'CREATE TABLE notes (id int)')");
        run("INSERT INTO organizations (id) VALUES (1)");
        assert!(registered("org_1"));
        assert_eq!(
            one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'org_1'"),
            oid
        );
        assert_eq!(count("SELECT 1 FROM org_1.users"), 1);
        assert_eq!(ledger("org_1"), all_versions());
        // Its ledger as it was, plus what it missed.
        assert_eq!(
            strings("SELECT version || ' ' || applied_at::text || ' ' || baselined FROM tenancy.ledger WHERE schema_name = 'org_1' AND version <> '0100' ORDER BY version"),
            before
        );
        assert_eq!(count("SELECT 1 FROM org_1.notes"), 0);
        assert_eq!(problems(), Vec::<String>::new());
        // A schema that was never this table's tenant is still refused.
        run("CREATE SCHEMA org_20");
        let f = fails("INSERT INTO organizations (id) VALUES (20)", "42P06");
        assert!(f.message.contains("\"org_20\""), "{}", f.message);
    }

    #[pg_test]
    fn case8_re_adoption_needs_the_owner_the_table_would_give() {
        setup();
        organizations("detach");
        run("INSERT INTO organizations (id) VALUES (1), (2)");
        run("DELETE FROM organizations");
        // Handed to another role while detached: not the owner the table gives its tenants.
        run("CREATE ROLE tenancy_other NOLOGIN");
        run("ALTER SCHEMA org_1 OWNER TO tenancy_other");
        let f = fails("INSERT INTO organizations (id) VALUES (1)", "42501");
        assert!(
            f.message
                .contains("organizations: cannot provision tenant \"org_1\"")
                && f.message.contains("tenancy_other"),
            "{}",
            f.message
        );
        assert!(!registered("org_1"));
        // Without a configured owner the inserting role must have the schema owner's privileges.
        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'detach')");
        app_role("tenancy_app", "provision");
        run("GRANT ALL ON public.organizations TO tenancy_app");
        let r = attempt_as("tenancy_app", "INSERT INTO organizations (id) VALUES (2)");
        assert_eq!(r.as_ref().map(|r| r.0.as_str()), Some("42501"), "{r:?}");
        assert!(!registered("org_2"));
        run(&format!("GRANT {} TO tenancy_app", tenant_owner()));
        as_role("tenancy_app", "INSERT INTO organizations (id) VALUES (2)");
        assert!(registered("org_2"));
    }

    #[pg_test]
    fn case8_deleting_a_row_whose_tenant_is_gone_says_how_to_remove_the_row() {
        setup();
        organizations("drop");
        run("INSERT INTO organizations (id) VALUES (1), (2)");
        run("SET LOCAL client_min_messages = warning");
        run("DROP SCHEMA org_1 CASCADE");
        let f = fails("DELETE FROM organizations WHERE id = 1", "42704");
        assert!(
            f.message
                .contains("public.organizations: cannot drop tenant \"org_1\""),
            "{}",
            f.message
        );
        assert!(
            f.hint.contains("DISABLE TRIGGER tenancy_retire")
                && f.hint.contains("tenancy.detach_tenant('org_1')"),
            "{}",
            f.hint
        );
        // The hint's way.
        run("SELECT tenancy.detach_tenant('org_1')");
        run("ALTER TABLE public.organizations DISABLE TRIGGER tenancy_retire");
        run("DELETE FROM organizations WHERE id = 1");
        run("ALTER TABLE public.organizations ENABLE TRIGGER tenancy_retire");
        assert_eq!(count("SELECT 1 FROM organizations"), 1);
        // Under 'detach', a tenant detached by hand.
        run("SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'detach')");
        run("SELECT tenancy.detach_tenant('org_2')");
        let f = fails("DELETE FROM organizations WHERE id = 2", "42704");
        assert!(
            f.message.contains("cannot detach tenant \"org_2\"")
                && f.hint.contains("DISABLE TRIGGER tenancy_retire"),
            "{} / {}",
            f.message,
            f.hint
        );
    }

    // Review fixes -----------------------------------------------------------------------------

    #[pg_test]
    fn review_remove_migration_is_refused_while_a_kept_ledger_has_it() {
        setup();
        organizations("detach");
        run("SELECT tenancy.add_migration('0100', 'notes', 'CREATE TABLE notes (id int)')");
        run("INSERT INTO organizations (id) VALUES (1)");
        assert!(ledger("org_1").contains(&"0100".to_string()));
        run("DELETE FROM organizations");
        assert_eq!(count("SELECT 1 FROM tenancy.detached_tenants"), 1);
        let f = fails("SELECT tenancy.remove_migration('0100')", "55000");
        assert!(
            f.message.contains("0100_notes")
                && f.message.contains("1 detached tenant")
                && f.message.contains("org_1")
                && f.hint.contains("DROP SCHEMA"),
            "{} / {}",
            f.message,
            f.hint
        );
        // Following the hint: dropping the schema forgets the kept ledger.
        run("DROP SCHEMA org_1 CASCADE");
        assert_eq!(
            one::<String>("SELECT tenancy.remove_migration('0100')").unwrap(),
            "0100_notes"
        );
    }

    #[pg_test]
    fn review_a_partitioned_managed_table_is_what_its_tenants_name() {
        setup();
        run("CREATE TABLE public.dorgs (region text NOT NULL, id int NOT NULL, PRIMARY KEY (region, id)) PARTITION BY LIST (region)");
        run("CREATE TABLE public.dorgs_eu PARTITION OF public.dorgs FOR VALUES IN ('eu')");
        run("CREATE TABLE public.dorgs_us PARTITION OF public.dorgs FOR VALUES IN ('us')");
        run(&format!(
            "SELECT tenancy.manage_tenant('dorgs', ARRAY['d_', ':region', '_', ':id'], on_delete => 'detach', owner => {})",
            lit(tenant_owner())
        ));
        run("INSERT INTO dorgs VALUES ('eu', 1), ('us', 2)");
        assert_eq!(
            count("SELECT 1 FROM tenancy.tenants WHERE managed_by::oid = 'public.dorgs'::regclass::oid"),
            2
        );
        // A row whose tenant was never provisioned: the message names the managed table.
        run("SET LOCAL session_replication_role = replica");
        run("INSERT INTO dorgs VALUES ('eu', 3)");
        run("RESET session_replication_role");
        let f = fails("DELETE FROM dorgs WHERE id = 3", "42704");
        assert!(
            f.message.starts_with("public.dorgs: ") && !f.message.contains("dorgs_eu"),
            "{}",
            f.message
        );
        run("SET LOCAL session_replication_role = replica");
        run("DELETE FROM dorgs WHERE id = 3");
        run("RESET session_replication_role");
        // Detached by a DELETE and re-adopted by the re-insert.
        run("DELETE FROM dorgs WHERE id = 1");
        assert!(!registered("d_eu_1") && schema_exists("d_eu_1"));
        run("INSERT INTO dorgs VALUES ('eu', 1)");
        assert!(registered("d_eu_1"));
        // TRUNCATE of the parent: verify sees the tenants without a row.
        run("TRUNCATE dorgs");
        let p = problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p.iter()
                .all(|x| x.contains("public.dorgs") && !x.contains("dorgs_")),
            "{p:?}"
        );
        // Dropping the parent unregisters it: no tenant keeps naming it.
        run("DROP TABLE dorgs");
        assert_eq!(
            count("SELECT 1 FROM tenancy.tenants WHERE managed_by IS NOT NULL"),
            0
        );
        assert_eq!(problems(), Vec::<String>::new());
    }

    #[pg_test]
    fn review_temporary_tables_and_views_are_refused_by_name() {
        setup();
        run("CREATE TEMP TABLE tmp_orgs (id int)");
        let f = fails(
            "SELECT tenancy.manage_tenant('tmp_orgs', ARRAY['t_', ':id'])",
            "0A000",
        );
        assert!(
            f.message.contains("tmp_orgs")
                && f.message.contains("temporary")
                && f.hint.contains("permanent"),
            "{} / {}",
            f.message,
            f.hint
        );
        assert_eq!(count("SELECT 1 FROM tenancy.managed_table_settings"), 0);
        run("CREATE VIEW public.orgs_v AS SELECT 1 AS id");
        let f = fails(
            "SELECT tenancy.manage_tenant('orgs_v', ARRAY['v_', ':id'])",
            "42P01",
        );
        assert!(
            f.message.contains("orgs_v") && !f.message.contains("OID"),
            "{}",
            f.message
        );
    }
}
