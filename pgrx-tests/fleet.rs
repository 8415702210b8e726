//! The fleet: `migrate_all` steps, status, verify.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, fails_bare, one, run, setup, strings};
    use pgrx::prelude::*;

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

    #[pg_test]
    fn fleet_launch_refuses_bad_arguments() {
        setup();
        let run_id = one::<i64>("SELECT tenancy._fleet_begin(2, NULL, false, '5s')").unwrap();
        let f = fails("SELECT tenancy._fleet_launch(NULL, 1)", "22004");
        assert!(
            f.message.contains("run_id must not be NULL"),
            "{}",
            f.message
        );
        let f = fails(
            &format!("SELECT tenancy._fleet_launch({run_id}, NULL)"),
            "22004",
        );
        assert!(
            f.message.contains("wanted must not be NULL"),
            "{}",
            f.message
        );
        let f = fails(
            &format!("SELECT tenancy._fleet_launch({run_id}, -1)"),
            "22023",
        );
        assert!(f.message.contains("not -1"), "{}", f.message);
        let f = fails("SELECT tenancy._fleet_launch(-5, 1)", "42704");
        assert!(f.message.contains("no fleet run -5"), "{}", f.message);
        assert_eq!(
            one::<i32>(&format!("SELECT tenancy._fleet_launch({run_id}, 0)")),
            Some(0)
        );
    }
}
