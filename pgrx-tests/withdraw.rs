//! Withdrawing and superseding migrations (issue 13, case 2): `tenancy.remove_migration` while no
//! tenant has a migration, refusals otherwise, and the documented way to supersede a migration
//! that tenants already have (docs/migrations.md, "Withdrawing or superseding a migration").

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, ledger, lit, one, run, setup, strings};
    use crate::in_db::trust_support::{app_role, as_role, attempt_as};
    use pgrx::prelude::*;

    fn registered() -> Vec<String> {
        strings("SELECT version FROM tenancy.migrations WHERE source = 'registered'")
    }

    /// The canary path: a migration fails on every tenant that tried it; it is withdrawn, its
    /// recorded failures go with it, and the version is free for the fixed text.
    #[pg_test]
    fn a_migration_no_tenant_has_is_withdrawn_and_its_version_reused() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        run("SELECT tenancy.create_tenant('org_2')");
        run("SELECT tenancy.add_migration('0006', 'notes', 'CREATE TABLE users (id int)')");
        // A fleet run: both tenants fail and the failures are recorded.
        let run_id = one::<i64>("SELECT tenancy._fleet_begin(1, NULL, false, '5s')").unwrap();
        while one::<bool>(&format!("SELECT tenancy._fleet_step({run_id})")).unwrap() {}
        assert_eq!(
            strings("SELECT state FROM tenancy.status ORDER BY 1"),
            vec!["failed", "failed"]
        );
        assert_eq!(
            one::<String>("SELECT tenancy.remove_migration('6')").unwrap(),
            "0006_notes"
        );
        assert!(registered().is_empty());
        assert_eq!(
            strings("SELECT state FROM tenancy.status ORDER BY 1"),
            vec!["up_to_date", "up_to_date"]
        );
        // The version is free again: the fixed text is no clash (42710 before).
        run("SELECT tenancy.add_migration('0006', 'notes', 'CREATE TABLE notes (id int)')");
        assert_eq!(
            strings("SELECT version FROM tenancy.migrate_tenant('org_1')"),
            vec!["0006"]
        );
        run("SELECT tenancy.create_tenant('org_3')");
        assert!(ledger("org_3").contains(&"0006".to_string()));
    }

    #[pg_test]
    fn a_migration_tenants_have_is_refused_with_the_tenants_named() {
        setup();
        run("SELECT tenancy.add_migration('0006', 'notes', 'CREATE TABLE notes (id int)')");
        for i in 1..=7 {
            run(&format!("SELECT tenancy.create_tenant('org_{i}')"));
        }
        let f = fails("SELECT tenancy.remove_migration('0006')", "55000");
        assert!(
            f.message.contains("0006_notes")
                && f.message.contains("7 tenants have applied it")
                && f.message
                    .contains("\"org_1\", \"org_2\", \"org_3\", \"org_4\", \"org_5\", …"),
            "{}",
            f.message
        );
        assert!(
            f.hint.contains("corrective migration")
                && f.hint.contains("Withdrawing or superseding a migration"),
            "{}",
            f.hint
        );
        assert_eq!(registered(), vec!["0006"]);
        // One tenant: no ellipsis.
        run("SELECT tenancy.add_migration('0007', 'tags', 'CREATE TABLE tags (id int)')");
        run("SELECT * FROM tenancy.migrate_tenant('org_3')");
        let f = fails("SELECT tenancy.remove_migration('0007')", "55000");
        assert!(
            f.message.ends_with("1 tenant has applied it (\"org_3\")"),
            "{}",
            f.message
        );
    }

    #[pg_test]
    fn embedded_unknown_and_bad_versions_are_refused() {
        setup();
        let f = fails("SELECT tenancy.remove_migration('0003')", "55000");
        assert!(
            f.message.contains("0003_tasks is embedded"),
            "{}",
            f.message
        );
        assert!(
            f.hint.contains("tenant_migrations/0003_tasks.sql") && f.hint.contains("come back"),
            "{}",
            f.hint
        );
        let f = fails("SELECT tenancy.remove_migration('0099')", "42704");
        assert!(f.message.contains("0099"), "{}", f.message);
        fails("SELECT tenancy.remove_migration('6x')", "22023");
        let f = fails("SELECT tenancy.remove_migration(NULL)", "22004");
        assert!(f.message.contains("version"), "{}", f.message);
        // A registered copy identical to an embedded migration is the embedded one.
        let sql =
            one::<String>("SELECT sql FROM tenancy._embedded_migrations() WHERE version = '0003'")
                .unwrap();
        run(&format!(
            "INSERT INTO tenancy.registered_migrations (version, name, sql, checksum) \
             SELECT '3', 'tasks', {0}, encode(sha256(convert_to({0}, 'UTF8')), 'hex')",
            lit(&sql)
        ));
        fails("SELECT tenancy.remove_migration('3')", "55000");
    }

    /// A registered migration that clashes with an embedded one of the same version refuses every
    /// migration call (42710); removing it is how to get out, while no tenant has its text.
    #[pg_test]
    fn a_registered_migration_that_clashes_with_an_embedded_one_can_be_removed() {
        setup();
        run("SELECT tenancy.create_tenant('org_1')");
        let other = "CREATE TABLE other_tasks (id int)";
        run(&format!(
            "INSERT INTO tenancy.registered_migrations (version, name, sql, checksum) \
             VALUES ('0003', 'other', {0}, encode(sha256(convert_to({0}, 'UTF8')), 'hex'))",
            lit(other)
        ));
        fails("SELECT * FROM tenancy.migrate_tenant('org_1')", "42710");
        assert_eq!(
            one::<String>("SELECT tenancy.remove_migration('0003')").unwrap(),
            "0003_other"
        );
        assert_eq!(count("SELECT * FROM tenancy.migrate_tenant('org_1')"), 0);
    }

    /// Only the migration's author (a member of it, or a superuser) may withdraw it: another
    /// author could otherwise put text of its own under the same version.
    #[pg_test]
    fn only_the_author_may_remove_a_migration() {
        setup();
        app_role("wd_alice", "author");
        app_role("wd_bob", "author");
        app_role("wd_ops", "provision");
        as_role(
            "wd_alice",
            "SELECT tenancy.add_migration('0006', 'notes', 'CREATE TABLE notes (id int)')",
        );
        let got = attempt_as("wd_bob", "SELECT tenancy.remove_migration('0006')");
        let (state, message) = got.expect("bob removed alice's migration");
        assert_eq!(state, "42501", "{message}");
        assert!(
            message.contains("0006_notes") && message.contains("\"wd_alice\""),
            "{message}"
        );
        // Below the author level the function is not granted at all.
        let got = attempt_as("wd_ops", "SELECT tenancy.remove_migration('0006')");
        assert_eq!(got.map(|g| g.0), Some("42501".to_string()));
        assert_eq!(registered(), vec!["0006"]);
        as_role("wd_alice", "SELECT tenancy.remove_migration('0006')");
        assert!(registered().is_empty());
        // A member of the author may.
        run("GRANT wd_alice TO wd_bob");
        as_role(
            "wd_alice",
            "SELECT tenancy.add_migration('0006', 'notes', 'CREATE TABLE notes (id int)')",
        );
        as_role("wd_bob", "SELECT tenancy.remove_migration('0006')");
        assert!(registered().is_empty());
        // An author that no longer exists: the extension's owner (here the superuser) may.
        as_role(
            "wd_bob",
            "SELECT tenancy.add_migration('0006', 'notes', 'CREATE TABLE notes (id int)')",
        );
        run("UPDATE tenancy.registered_migrations SET added_by = 'wd_nobody' WHERE version = '0006'");
        let (state, message) = attempt_as("wd_bob", "SELECT tenancy.remove_migration('0006')")
            .expect("bob removed a migration of a role that no longer exists");
        assert_eq!(state, "42501", "{message}");
        assert!(message.contains("no longer exists"), "{message}");
        run("SELECT tenancy.remove_migration('0006')");
        assert!(registered().is_empty());
    }

    /// The documented procedure (docs/migrations.md, "Withdrawing or superseding a migration"):
    /// migration 0006 gave `notes.body` a wrong default and some tenants have it. It cannot be
    /// removed; a corrective migration 0007 is added; tenants that had 0006 and tenants created
    /// afterwards end identical, and verify finds nothing.
    #[pg_test]
    fn a_migration_tenants_have_is_superseded_by_a_corrective_one() {
        setup();
        let owner = crate::in_db::support::tenant_owner();
        run("SELECT tenancy.add_migration('0006', 'notes', $m$CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL DEFAULT 'TODO')$m$)");
        for t in ["org_1", "org_2"] {
            run(&format!("SELECT tenancy.create_tenant('{t}', '{owner}')"));
        }
        run("INSERT INTO org_1.notes (id) VALUES (1)");
        // 1. It cannot be withdrawn: tenants have it.
        fails("SELECT tenancy.remove_migration('0006')", "55000");
        // 2. A corrective migration of a later version, right whatever 0006 left.
        run("SELECT tenancy.add_migration('0007', 'notes_no_default', $m$ALTER TABLE notes ALTER COLUMN body DROP DEFAULT; UPDATE notes SET body = '' WHERE body = 'TODO'$m$)");
        // 3. Roll it out (CALL tenancy.migrate_all() outside a test); new tenants get both.
        for t in ["org_1", "org_2"] {
            assert_eq!(
                strings(&format!(
                    "SELECT version FROM tenancy.migrate_tenant('{t}')"
                )),
                vec!["0007"]
            );
        }
        run(&format!("SELECT tenancy.create_tenant('org_3', '{owner}')"));
        // 4. Check: no tenant keeps the default, all have the same shape, verify is clean.
        assert_eq!(
            count("SELECT 1 FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'body' AND column_default IS NOT NULL"),
            0
        );
        assert_eq!(one::<String>("SELECT body FROM org_1.notes").unwrap(), "");
        for t in ["org_1", "org_2"] {
            assert_eq!(
                count(&format!(
                    "SELECT * FROM tenancy.compare_schemas('org_3', '{t}')"
                )),
                0,
                "{t}"
            );
        }
        assert_eq!(
            strings("SELECT coalesce(schema_name::text, '') || ': ' || problem FROM tenancy.verify(deep => true)"),
            Vec::<String>::new()
        );
        assert_eq!(
            strings("SELECT state FROM tenancy.status ORDER BY schema_name"),
            vec!["up_to_date", "up_to_date", "up_to_date"]
        );
    }
}
