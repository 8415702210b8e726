//! Issue 13, case 1: tenants survive `pg_upgrade` (schema OIDs change, the registry's rows do not)
//! and DDL made behind pg_tenancy's back is noted by event triggers, so that it is still reported
//! after an upgrade; `tenancy.relink` links what the operator says is the tenant's schema.
//!
//! A `pg_upgrade` is simulated the way it looks from inside: `tenancy.registry_cluster` names
//! another cluster and every registered OID is one this cluster never gave (the real one is
//! tests/integration/pg_upgrade.sh).

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{
        count, fails, fails_bare, ledger, one, run, setup, strings, tenant_owner,
    };
    use pgrx::prelude::*;

    fn simulate_pg_upgrade() {
        run("UPDATE tenancy.registry_cluster SET system_identifier = system_identifier + 1");
        run("UPDATE tenancy.tenants SET schema_oid = NULL");
        run("UPDATE tenancy.tenants SET schema_oid = (4000000000 - hashtext(schema_name)::bigint % 1000000)::oid
             WHERE schema_dropped_at IS NULL");
    }

    /// How many migrations pg_tenancy ships (a new tenant's ledger length).
    fn embedded() -> usize {
        count("SELECT * FROM tenancy._embedded_checksums()") as usize
    }

    fn problems() -> Vec<String> {
        strings("SELECT schema_name || ': ' || problem FROM tenancy.verify() ORDER BY 1")
    }

    #[pg_test]
    fn event_triggers_note_drops_and_renames_made_behind_pg_tenancys_back() {
        setup();
        let owner = tenant_owner();
        for t in ["org_1", "org_2", "org_3", "org_4"] {
            run(&format!(
                "SELECT tenancy.create_tenant('{t}', owner => '{owner}')"
            ));
        }
        run("ALTER SCHEMA org_1 RENAME TO org_1_moved");
        run("DROP SCHEMA org_2 CASCADE");
        run("CREATE SCHEMA org_2");
        // pg_tenancy's own rename and drop are not "behind its back".
        run("SELECT tenancy.rename_tenant('org_3', 'org_30')");
        run("SELECT tenancy.drop_tenant('org_4')");
        assert_eq!(
            strings(
                "SELECT schema_name || ' ' || coalesce(schema_oid::text, '-') || ' ' || (schema_dropped_at IS NOT NULL)
                        || ' ' || coalesce(schema_renamed_to, '-')
                 FROM tenancy.tenants WHERE schema_name <> 'org_30' ORDER BY 1"
            )
            .into_iter()
            .map(|r| r.split(' ').map(|w| if w.chars().all(|c| c.is_ascii_digit()) { "oid" } else { w }).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
            vec!["org_1 oid false org_1_moved", "org_2 - true -"]
        );
        assert_eq!(
            count("SELECT 1 FROM tenancy.tenants WHERE schema_name = 'org_30' AND schema_renamed_to IS NULL AND schema_dropped_at IS NULL"),
            1
        );
        // Found by review: set_tenant said "dropped … relink" and drop_tenant "does not exist"
        // (hinting at detach_tenant) for a schema renamed by hand; both say what happened.
        for call in [
            "SELECT tenancy.set_tenant('org_1')",
            "SELECT tenancy.drop_tenant('org_1')",
        ] {
            let f = fails(call, "55000");
            assert!(
                f.message
                    .contains("renamed to \"org_1_moved\" behind pg_tenancy's back"),
                "{call}: {}",
                f.message
            );
            assert!(
                f.hint
                    .contains("ALTER SCHEMA \"org_1_moved\" RENAME TO \"org_1\""),
                "{call}: {}",
                f.hint
            );
        }
        let p = problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("org_1: the schema was renamed to org_1_moved"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with(
                "org_2: the registered schema was dropped behind pg_tenancy's back at "
            ),
            "{p:?}"
        );
        // The hint never recommends detach_tenant without saying it deletes the ledger.
        assert!(
            p[1].contains("tenancy.relink") && p[1].contains("deletes the tenant's ledger"),
            "{p:?}"
        );
        let f = fails("SELECT * FROM tenancy.migrate_tenant('org_2')", "3F000");
        assert!(
            f.hint.contains("relink") && f.hint.contains("deletes the tenant's ledger"),
            "{}",
            f.hint
        );
        // Renamed back by hand: the note goes.
        run("ALTER SCHEMA org_1_moved RENAME TO org_1");
        assert_eq!(
            count("SELECT 1 FROM tenancy.tenants WHERE schema_renamed_to IS NOT NULL"),
            0
        );
        assert_eq!(problems().len(), 1);
    }

    #[pg_test]
    fn a_tenant_dropped_and_recreated_by_hand_is_still_reported_after_pg_upgrade() {
        setup();
        let owner = tenant_owner();
        for t in ["org_1", "org_2", "org_3"] {
            run(&format!(
                "SELECT tenancy.create_tenant('{t}', owner => '{owner}')"
            ));
        }
        run("DROP SCHEMA org_2 CASCADE");
        run(&format!("CREATE SCHEMA org_2 AUTHORIZATION {owner}"));
        run("ALTER SCHEMA org_3 RENAME TO org_3_moved");
        simulate_pg_upgrade();
        // Read paths resolve by name and write nothing (they must work on a hot standby).
        run("SET TRANSACTION READ ONLY");
        let p = problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with(
                "org_2: the registered schema was dropped behind pg_tenancy's back at "
            ),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("org_3: the schema was renamed to org_3_moved"),
            "{p:?}"
        );
        run("SELECT tenancy.set_tenant('org_1')");
        assert_eq!(count("SELECT 1 FROM users"), 0);
        assert_eq!(count("SELECT * FROM tenancy.all_tenants()"), 3);
        assert_eq!(count("SELECT * FROM tenancy.relink()"), 1);
        assert_eq!(
            one::<bool>("SELECT current_setting('transaction_read_only')::boolean"),
            Some(true)
        );
    }

    #[pg_test]
    fn the_first_write_after_pg_upgrade_relinks_every_tenant_once() {
        setup();
        let owner = tenant_owner();
        for t in ["org_1", "org_2", "org_3"] {
            run(&format!(
                "SELECT tenancy.create_tenant('{t}', owner => '{owner}')"
            ));
        }
        run("DROP SCHEMA org_3 CASCADE");
        run(&format!("CREATE SCHEMA org_3 AUTHORIZATION {owner}"));
        simulate_pg_upgrade();
        run("SELECT tenancy.add_migration('0100', 'notes', 'CREATE TABLE notes (id int)')");
        assert_eq!(count("SELECT * FROM tenancy.migrate_tenant('org_1')"), 1);
        // Re-linked: every OID is the schema's of its name again, the cluster recorded, the
        // tenant dropped by hand still without a schema.
        assert_eq!(
            count("SELECT 1 FROM tenancy.registry_cluster WHERE system_identifier = tenancy._system_identifier()"),
            1
        );
        assert_eq!(
            count("SELECT 1 FROM tenancy.tenants t JOIN pg_namespace n ON n.oid = t.schema_oid AND n.nspname = t.schema_name"),
            2
        );
        assert_eq!(
            count(
                "SELECT 1 FROM tenancy.tenants WHERE schema_name = 'org_3' AND schema_oid IS NULL"
            ),
            1
        );
        run("SELECT tenancy.rename_tenant('org_2', 'org_20')");
        assert_eq!(count("SELECT * FROM tenancy.migrate_tenant('org_20')"), 1);
        let p = problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("org_3: the registered schema was dropped"),
            "{p:?}"
        );
        // A new tenant gets an OID that may have been an old one: no conflict.
        run(&format!(
            "SELECT tenancy.create_tenant('org_4', owner => '{owner}')"
        ));
        assert_eq!(ledger("org_4").len(), embedded() + 1);
    }

    #[pg_test]
    fn relink_reports_and_links_only_when_asked_and_keeps_the_ledger() {
        setup();
        let owner = tenant_owner();
        run(&format!(
            "SELECT tenancy.create_tenant('org_1', owner => '{owner}')"
        ));
        run(&format!(
            "SELECT tenancy.create_tenant('org_2', owner => '{owner}')"
        ));
        // Changed while the event triggers do not fire: only the OID tells.
        run("SET LOCAL session_replication_role = replica");
        run("DROP SCHEMA org_1 CASCADE");
        run(&format!("CREATE SCHEMA org_1 AUTHORIZATION {owner}"));
        run("RESET session_replication_role");
        // Noted by the event trigger.
        run("DROP SCHEMA org_2 CASCADE");
        assert_eq!(
            count("SELECT 1 FROM tenancy.tenants WHERE schema_dropped_at IS NOT NULL"),
            1
        );
        let p = problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("org_1: the registered schema was dropped behind pg_tenancy's back and another schema"), "{p:?}");
        assert!(
            p[1].starts_with("org_2: the registered schema no longer exists"),
            "{p:?}"
        );
        // A dry run by default: reports, changes nothing.
        let r = strings("SELECT schema_name || ': ' || action FROM tenancy.relink()");
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].starts_with("org_1: its registered schema (OID ")
                && r[0].contains("would link it"),
            "{r:?}"
        );
        assert_eq!(problems().len(), 2);
        fails("SELECT * FROM tenancy.relink(NULL)", "22004");
        let r = strings("SELECT action FROM tenancy.relink(dry_run => false)");
        assert!(
            r[0].contains("linked it to the schema now named \"org_1\""),
            "{r:?}"
        );
        assert_eq!(ledger("org_1").len(), embedded());
        assert_eq!(count("SELECT * FROM tenancy.migrate_tenant('org_1')"), 0);
        // org_2 re-created (restored by hand, say): linked when asked, its note cleared.
        run(&format!("CREATE SCHEMA org_2 AUTHORIZATION {owner}"));
        let r = strings("SELECT action FROM tenancy.relink(dry_run => false)");
        assert!(
            r[0].starts_with("its schema was dropped behind pg_tenancy's back at "),
            "{r:?}"
        );
        assert_eq!(count("SELECT 1 FROM tenancy.tenants WHERE schema_dropped_at IS NOT NULL OR schema_oid IS NULL"), 0);
        assert_eq!(ledger("org_2").len(), embedded());
        assert_eq!(count("SELECT * FROM tenancy.relink()"), 0);
    }

    #[pg_test]
    fn the_event_triggers_record_only_the_truth_whoever_calls_them() {
        setup();
        let owner = tenant_owner();
        run(&format!(
            "SELECT tenancy.create_tenant('org_1', owner => '{owner}')"
        ));
        run(&format!(
            "SELECT tenancy.create_tenant('org_2', owner => '{owner}')"
        ));
        let oid1 =
            one::<pg_sys::Oid>("SELECT oid FROM pg_namespace WHERE nspname = 'org_1'").unwrap();
        run("DO $$ BEGIN CREATE ROLE tenancy_nobody NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        run("SET LOCAL ROLE tenancy_nobody");
        // Any role may call the helper, and can make it record nothing that is not so.
        run(&format!(
            "SELECT tenancy._schema_ddl(ARRAY[{}]::oid[])",
            oid1.to_u32()
        ));
        run("SELECT tenancy._schema_ddl(NULL)");
        fails_bare(
            "UPDATE tenancy.tenants SET schema_dropped_at = now()",
            "42501",
        );
        run("RESET ROLE");
        assert_eq!(
            count("SELECT 1 FROM tenancy.tenants WHERE schema_dropped_at IS NOT NULL OR schema_renamed_to IS NOT NULL OR schema_oid IS NULL"),
            0
        );
        // The tenant's owner (no grants on pg_tenancy) drops and renames its own schemas: noted.
        run(&format!(
            "DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO {owner}', current_database()); END $$"
        ));
        run(&format!("SET LOCAL ROLE {owner}"));
        run("ALTER SCHEMA org_1 RENAME TO org_1_moved");
        run("DROP SCHEMA org_2 CASCADE");
        run("RESET ROLE");
        assert_eq!(
            strings("SELECT schema_name || ' ' || coalesce(schema_renamed_to, '-') || ' ' || (schema_oid IS NULL) FROM tenancy.tenants ORDER BY 1"),
            vec!["org_1 org_1_moved false", "org_2 - true"]
        );
        assert_eq!(
            count("SELECT 1 FROM pg_event_trigger e JOIN pg_depend d ON d.objid = e.oid AND d.deptype = 'e'
                   WHERE e.evtname LIKE 'pg_tenancy_schema_%'"),
            3
        );
    }
}
