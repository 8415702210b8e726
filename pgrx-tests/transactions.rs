//! Migrations that need their own transaction (issue 13, case 2): enum values added by one
//! migration and used by a later one, for a new tenant provisioned in one transaction and for an
//! existing tenant migrated by `migrate_tenant`; statements that cannot run in a transaction
//! block at all. (`CALL migrate_all` committing per migration is in
//! tests/integration/transactions.sh: a CALL cannot run inside a test's transaction.)

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, ledger, one, run, setup, strings};
    use pgrx::prelude::*;

    /// The shape measured on 15: CREATE TYPE in one migration, ADD VALUE in the next, a use of
    /// the value in the third.
    fn enum_migrations() {
        run("SELECT tenancy.add_migration('0006', 'ticket_status', $m$CREATE TYPE ticket_status AS ENUM ('open', 'done')$m$)");
        run("SELECT tenancy.add_migration('0007', 'ticket_status_waiting', $m$ALTER TYPE ticket_status ADD VALUE 'waiting' BEFORE 'done'$m$)");
        run("SELECT tenancy.add_migration('0008', 'tickets', $m$CREATE TABLE tickets (id int PRIMARY KEY, status ticket_status NOT NULL DEFAULT 'waiting'); INSERT INTO tickets VALUES (1, 'waiting')$m$)");
    }

    #[pg_test]
    fn a_new_tenant_gets_an_enum_created_extended_and_used_in_one_transaction() {
        setup();
        enum_migrations();
        run("SELECT tenancy.create_tenant('org_1')");
        assert!(ledger("org_1").contains(&"0008".to_string()));
        assert_eq!(
            one::<String>("SELECT enum_range(NULL::org_1.ticket_status)::text").unwrap(),
            "{open,waiting,done}"
        );
        assert_eq!(
            one::<String>("SELECT status::text FROM org_1.tickets").unwrap(),
            "waiting"
        );
        // The sign-up path: a row of a managed table, in the row's transaction.
        run("CREATE TABLE public.organizations (id bigint PRIMARY KEY)");
        run("SELECT tenancy.manage_tenant('public.organizations', ARRAY['org_', ':id'])");
        run("INSERT INTO public.organizations VALUES (2), (3)");
        for t in ["org_2", "org_3"] {
            assert_eq!(
                one::<String>(&format!("SELECT enum_range(NULL::{t}.ticket_status)::text"))
                    .unwrap(),
                "{open,waiting,done}",
                "{t}"
            );
        }
        // Every tenant looks the same as one built migration by migration.
        assert_eq!(
            count("SELECT * FROM tenancy.compare_schemas('org_1', 'org_2')"),
            0
        );
    }

    #[pg_test]
    fn scratch_builds_fold_enum_values_too() {
        setup();
        enum_migrations();
        run("SELECT tenancy.create_template('tpl')");
        assert_eq!(
            one::<String>("SELECT enum_range(NULL::tpl.ticket_status)::text").unwrap(),
            "{open,waiting,done}"
        );
        let generated = one::<String>("SELECT tenancy.generate_migration('tpl')").unwrap();
        assert!(
            !generated.contains("ticket_status"),
            "an unedited template differs: {generated}"
        );
    }

    #[pg_test]
    fn an_existing_tenant_cannot_add_and_use_a_value_in_one_transaction() {
        setup();
        run("SELECT tenancy.add_migration('0006', 'ticket_status', $m$CREATE TYPE ticket_status AS ENUM ('open', 'done')$m$)");
        run("SELECT tenancy.create_tenant('org_1')");
        run("SELECT tenancy.add_migration('0007', 'ticket_status_waiting', $m$ALTER TYPE ticket_status ADD VALUE 'waiting'$m$)");
        run("SELECT tenancy.add_migration('0008', 'tickets', $m$CREATE TABLE tickets (id int, status ticket_status DEFAULT 'waiting')$m$)");
        // (In a sub-transaction, as a client's SAVEPOINT would be: PostgreSQL refuses the value
        // there on every major.)
        let f = fails("SELECT * FROM tenancy.migrate_tenant('org_1')", "55P04");
        assert!(
            f.message.contains("tenant \"org_1\"") && f.message.contains("0008_tickets"),
            "{}",
            f.message
        );
        assert!(
            f.detail.contains("0007_ticket_status_waiting"),
            "{}",
            f.detail
        );
        assert!(
            f.hint
                .contains("CALL tenancy.migrate_all(tenants => ARRAY['org_1'])")
                && f.hint.contains("target => '0007'"),
            "{}",
            f.hint
        );
        assert!(!ledger("org_1").contains(&"0007".to_string()));
        // Up to the migration that adds the value works in one transaction (its commit then
        // makes the value usable).
        assert_eq!(
            strings("SELECT version FROM tenancy.migrate_tenant('org_1', '0007')"),
            vec!["0007"]
        );
    }

    #[pg_test]
    fn statements_that_cannot_run_in_a_transaction_fail_precisely_at_apply_time_too() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        // Hidden from the load-time check inside a DO block: PostgreSQL refuses it when it runs.
        run("SELECT tenancy.add_migration('0006', 'cic', $m$CREATE TABLE t (x int); DO $$ BEGIN EXECUTE 'CREATE INDEX CONCURRENTLY t_x ON t (x)'; END $$$m$)");
        let f = fails("SELECT * FROM tenancy.migrate_tenant('org_1')", "25001");
        assert!(
            f.message.contains("tenant \"org_1\"") && f.message.contains("0006_cic"),
            "{}",
            f.message
        );
        assert!(f.detail.contains("statement 2"), "{}", f.detail);
        assert!(
            f.hint.contains("inside a transaction") && f.hint.contains("CONCURRENTLY"),
            "{}",
            f.hint
        );
    }
}
