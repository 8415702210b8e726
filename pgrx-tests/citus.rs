//! Issue 14: without Citus nothing changes. The behaviour on Citus (tenants distributed whole,
//! verify, reconcile, move_tenant) is tested on a real coordinator and two workers by
//! tests/integration/citus.sh, which reports itself skipped where Citus is not installed; the
//! pgrx test cluster never preloads Citus.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, fails_bare, one, run, setup, strings, tenant_owner};
    use pgrx::prelude::*;

    #[pg_test]
    fn without_citus_tenants_stay_local_whatever_tenancy_distribute_says() {
        setup();
        let owner = tenant_owner();
        for (i, mode) in ["auto", "on", "off"].iter().enumerate() {
            run(&format!("SET LOCAL tenancy.distribute = {mode}"));
            run(&format!(
                "SELECT tenancy.create_tenant('org_{i}', owner => '{owner}')"
            ));
        }
        assert_eq!(count("SELECT * FROM tenancy.verify()"), 0);
        assert_eq!(count("SELECT * FROM tenancy._verify_citus()"), 0);
        assert_eq!(
            count("SELECT * FROM tenancy.status WHERE node IS NOT NULL"),
            0
        );
        assert_eq!(count("SELECT * FROM tenancy.status"), 3);
        assert_eq!(count("SELECT * FROM tenancy._tenant_nodes()"), 0);
        let reconcile = strings("SELECT action FROM tenancy.reconcile(dry_run => false)");
        assert!(reconcile.is_empty(), "{reconcile:?}");
    }

    #[pg_test]
    fn tenancy_distribute_accepts_only_auto_on_and_off() {
        setup();
        fails_bare("SET LOCAL tenancy.distribute = sometimes", "22023");
        run("SET LOCAL tenancy.distribute = ON");
        assert_eq!(
            one::<String>("SELECT current_setting('tenancy.distribute')").as_deref(),
            Some("on")
        );
    }

    #[pg_test]
    fn move_tenant_without_citus_says_citus_is_needed() {
        setup();
        run(&format!(
            "SELECT tenancy.create_tenant('org_1', owner => '{}')",
            tenant_owner()
        ));
        let f = fails(
            "SELECT tenancy.move_tenant('org_1', 'localhost', 5432)",
            "0A000",
        );
        assert!(f.message.contains("needs Citus"), "{}", f.message);
        assert!(f.message.contains("not installed"), "{}", f.message);
        for (sql, state) in [
            (
                "SELECT tenancy.move_tenant(NULL, 'localhost', 5432)",
                "22004",
            ),
            ("SELECT tenancy.move_tenant('org_1', NULL, 5432)", "22004"),
            (
                "SELECT tenancy.move_tenant('org_1', 'localhost', NULL)",
                "22004",
            ),
            (
                "SELECT tenancy.move_tenant('org_1', 'localhost', 5432, NULL)",
                "22004",
            ),
        ] {
            fails(sql, state);
        }
    }
}
