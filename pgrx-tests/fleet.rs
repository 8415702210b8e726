//! The fleet: `migrate_all` steps, status, verify.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, fails_bare, one, run, setup, strings, tenant_owner};
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
            "20261127000000"
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
        run(&format!(
            "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], owner => '{}')",
            tenant_owner()
        ));
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
    fn backend_alive_needs_the_pid_and_its_start_time() {
        setup();
        let me = "(SELECT a.pid, a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()) AS me";
        assert_eq!(
            one::<bool>(&format!(
                "SELECT tenancy._backend_alive(me.pid, me.backend_start) FROM {me}"
            )),
            Some(true)
        );
        // The same PID with another start time: an earlier process that had this PID.
        assert_eq!(
            one::<bool>(&format!(
                "SELECT tenancy._backend_alive(me.pid, me.backend_start - interval '1 microsecond') FROM {me}"
            )),
            Some(false)
        );
        assert_eq!(
            one::<bool>("SELECT tenancy._backend_alive(0, now())"),
            Some(false)
        );
        let f = fails("SELECT tenancy._backend_alive(NULL, now())", "22004");
        assert!(f.message.contains("pid must not be NULL"), "{}", f.message);
        let f = fails(
            "SELECT tenancy._backend_alive(pg_backend_pid(), NULL)",
            "22004",
        );
        assert!(
            f.message.contains("backend_start must not be NULL"),
            "{}",
            f.message
        );
    }

    #[pg_test]
    fn jobs_are_tracked_by_pid_and_backend_start_not_by_application_name() {
        setup();
        let run_id = one::<i64>("SELECT tenancy._fleet_begin(2, NULL, false, '5s')").unwrap();
        // The coordinator joined its run when it planned it.
        assert_eq!(
            strings(&format!(
                "SELECT j.worker::text FROM tenancy.fleet_jobs j JOIN pg_stat_activity a USING (pid, backend_start)
                 WHERE j.run_id = {run_id} AND a.pid = pg_backend_pid()"
            )),
            vec!["false"]
        );
        let state = format!("SELECT state FROM tenancy.progress WHERE run_id = {run_id}");
        assert_eq!(one::<String>(&state).unwrap(), "running");
        // The recorded job is an earlier process with this PID: the run is dead, whatever this
        // session calls itself.
        run(&format!(
            "UPDATE tenancy.fleet_jobs SET backend_start = backend_start - interval '1 second' WHERE run_id = {run_id}"
        ));
        run(&format!(
            "SET LOCAL application_name = 'pg_tenancy fleet run {run_id}'"
        ));
        assert_eq!(one::<String>(&state).unwrap(), "interrupted");
        run(&format!(
            "INSERT INTO tenancy.fleet_jobs SELECT {run_id}, pid, backend_start - interval '2 seconds', true
             FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ));
        assert_eq!(one::<String>(&state).unwrap(), "interrupted");
        let wait = format!("SELECT tenancy._fleet_wait({run_id})");
        assert_eq!(one::<bool>(&wait), Some(false));
        // A worker recorded with the live (pid, backend_start) is waited for.
        run(&format!(
            "INSERT INTO tenancy.fleet_jobs SELECT {run_id}, pid, backend_start, true
             FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ));
        assert_eq!(one::<bool>(&wait), Some(true));
        assert_eq!(one::<String>(&state).unwrap(), "running");
        // A finished run takes no more jobs.
        run(&format!("SELECT tenancy._fleet_finish({run_id})"));
        assert_eq!(
            one::<bool>(&format!("SELECT tenancy._fleet_join({run_id}, true)")),
            Some(false)
        );
        assert_eq!(
            count(&format!(
                "SELECT 1 FROM tenancy.fleet_jobs WHERE run_id = {run_id}"
            )),
            3
        );
    }

    #[pg_test]
    fn a_coordinator_that_set_role_joins_with_its_real_start_time() {
        setup();
        assert_eq!(
            one::<bool>(
                "SELECT tenancy._backend_start() = a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()"
            ),
            Some(true)
        );
        run("CREATE ROLE tenancy_fleet_ops");
        run("SELECT tenancy.grant_admin('tenancy_fleet_ops')");
        run("SET LOCAL ROLE tenancy_fleet_ops");
        // pg_stat_activity hides this session's start time from the role it now has.
        assert_eq!(
            one::<bool>(
                "SELECT backend_start IS NULL FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ),
            Some(true)
        );
        let run_id = one::<i64>("SELECT tenancy._fleet_begin(2, NULL, false, '5s')").unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT state FROM tenancy.progress WHERE run_id = {run_id}"
            ))
            .unwrap(),
            "running"
        );
        run("RESET ROLE");
        assert_eq!(
            count(&format!(
                "SELECT FROM tenancy.fleet_jobs j JOIN pg_stat_activity a USING (pid, backend_start)
                 WHERE j.run_id = {run_id} AND a.pid = pg_backend_pid() AND NOT j.worker"
            )),
            1
        );
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
