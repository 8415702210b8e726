//! Tenant references to shared tables without fan-in (issue 15): `share_table`,
//! `reference_shared`, the shipped migration that uses it, their errors, the trust boundary, and
//! what `verify()` says about native foreign keys. Concurrency is in
//! tests/isolation/specs/shared_refs.spec.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, fails_bare, one, run, setup, strings, tenant_owner};
    use pgrx::prelude::*;

    fn plan_triggers() -> i64 {
        count("SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.plans'::regclass")
    }

    /// public.plans shared by its owner, plans 1..3, two tenants of an ordinary owner.
    fn shared_plans() -> &'static str {
        setup();
        let owner = tenant_owner();
        run("INSERT INTO public.plans VALUES (2, 'pro'), (3, 'team') ON CONFLICT DO NOTHING");
        run("SELECT tenancy.share_table('public.plans')");
        run(&format!("SELECT tenancy.create_tenant('acme', '{owner}')"));
        run(&format!(
            "SELECT tenancy.create_tenant('globex', '{owner}')"
        ));
        owner
    }

    /// The defect (issue 15): on main every tenant adds two RI triggers to public.plans. With
    /// public.plans shared, the shipped migrations reference it through pg_tenancy and
    /// provisioning adds none.
    #[pg_test]
    fn provisioning_adds_no_trigger_to_a_shared_table() {
        let owner = shared_plans();
        assert_eq!(plan_triggers(), 2, "the guard and the TRUNCATE guard only");
        for i in 0..5 {
            run(&format!("SELECT tenancy.create_tenant('t{i}', '{owner}')"));
        }
        assert_eq!(plan_triggers(), 2);
        assert_eq!(
            count("SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = 'public.plans'::regclass"),
            0
        );
        assert_eq!(
            strings("SELECT referencing::text FROM tenancy.shared_references ORDER BY 1"),
            vec![
                "acme.subscription",
                "globex.subscription",
                "t0.subscription",
                "t1.subscription",
                "t2.subscription",
                "t3.subscription",
                "t4.subscription"
            ]
        );
        // The referencing column has an index (the probe of a shared-row delete uses it).
        assert_eq!(
            count("SELECT 1 FROM pg_index WHERE indrelid = 'acme.subscription'::regclass AND indkey[0] = 2"),
            1
        );
        // Without share_table, the migration keeps 0005's native foreign key.
        run("DELETE FROM tenancy.shared_table_settings");
        run(&format!(
            "SELECT tenancy.create_tenant('native1', '{owner}')"
        ));
        assert_eq!(
            count("SELECT 1 FROM pg_constraint WHERE contype = 'f' AND conrelid = 'native1.subscription'::regclass"),
            1
        );
    }

    #[pg_test]
    fn a_missing_shared_row_is_refused_naming_tenant_table_and_key() {
        shared_plans();
        run("INSERT INTO acme.subscription (plan_id) VALUES (2)");
        let f = fails(
            "INSERT INTO globex.subscription (plan_id) VALUES (99)",
            "23503",
        );
        assert!(
            f.message.contains("tenant \"globex\"")
                && f.message.contains("globex.subscription")
                && f.message.contains("(plan_id)=(99)")
                && f.message.contains("public.plans"),
            "{}",
            f.message
        );
        assert!(
            f.hint.contains("Insert that row into public.plans"),
            "{}",
            f.hint
        );
        // Updates of the referencing column are checked too; NULL references nothing.
        fails("UPDATE acme.subscription SET plan_id = 42", "23503");
        run("ALTER TABLE globex.subscription ALTER COLUMN plan_id DROP NOT NULL");
        run("INSERT INTO globex.subscription (plan_id) VALUES (NULL)");
        // The key is noted once per tenant table.
        assert_eq!(
            strings("SELECT referencing::text || ':' || key::text FROM tenancy.shared_presence ORDER BY 1"),
            vec!["acme.subscription:{2}"]
        );
    }

    #[pg_test]
    fn deleting_or_rekeying_a_referenced_shared_row_is_refused() {
        shared_plans();
        run("INSERT INTO acme.subscription (plan_id) VALUES (2)");
        // Unreferenced rows go; non-key updates of referenced ones are fine.
        run("DELETE FROM public.plans WHERE id = 3");
        run("UPDATE public.plans SET label = 'PRO' WHERE id = 2");
        run("UPDATE public.plans SET id = id WHERE id = 2");
        let f = fails("DELETE FROM public.plans WHERE id = 2", "23503");
        assert!(
            f.message.contains("public.plans")
                && f.message.contains("(id)=(2)")
                && f.message.contains("tenant \"acme\"")
                && f.message.contains("acme.subscription"),
            "{}",
            f.message
        );
        assert!(f.hint.contains("acme.subscription"), "{}", f.hint);
        let f = fails("UPDATE public.plans SET id = 20 WHERE id = 2", "23503");
        assert!(f.message.contains("change the key"), "{}", f.message);
        // TRUNCATE is refused while tenant tables reference the table.
        let f = fails("TRUNCATE public.plans CASCADE", "0A000");
        assert!(f.message.contains("2 tenant tables"), "{}", f.message);
        // Once the tenant row moves away, the delete passes and the stale note goes.
        run("UPDATE acme.subscription SET plan_id = 1");
        assert_eq!(
            count("SELECT 1 FROM tenancy.shared_presence WHERE key = '{2}'"),
            1
        );
        run("DELETE FROM public.plans WHERE id = 2");
        assert_eq!(
            count("SELECT 1 FROM tenancy.shared_presence WHERE key = '{2}'"),
            0
        );
        // A dropped tenant takes its references and notes with it.
        run("SELECT tenancy.drop_tenant('acme')");
        assert_eq!(count("SELECT 1 FROM tenancy.shared_presence"), 0);
        assert_eq!(
            strings("SELECT referencing::text FROM tenancy.shared_references"),
            vec!["globex.subscription"]
        );
        run("DELETE FROM public.plans WHERE id = 1");
    }

    #[pg_test]
    fn declaring_a_reference_checks_its_prerequisites() {
        setup();
        let owner = tenant_owner();
        run(&format!("SELECT tenancy.create_tenant('acme', '{owner}')"));
        run("CREATE TABLE acme.orders (id int PRIMARY KEY, plan_id bigint, plan_code text, small int)");
        run(&format!("ALTER TABLE acme.orders OWNER TO {owner}"));
        // Not prepared: 55000 with the share_table call to run as the table's owner.
        let f = fails(
            "SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_id'], 'public.plans')",
            "55000",
        );
        assert!(
            f.hint
                .contains("SELECT tenancy.share_table('public.plans')")
                && f.hint.contains("owner of public.plans"),
            "{}",
            f.hint
        );
        // share_table needs the owner's rights.
        run(&format!("SET LOCAL ROLE {owner}"));
        let f = fails("SELECT tenancy.share_table('public.plans')", "42501");
        assert!(f.hint.contains("SET ROLE"), "{}", f.hint);
        run("RESET ROLE");
        run("SELECT tenancy.share_table('public.plans')");
        run("SELECT tenancy.share_table('public.plans')"); // idempotent
        assert_eq!(plan_triggers() - count("SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.plans'::regclass AND tgname LIKE 'RI_%'"), 2);
        // The declaring role must own the tenant table and may reference the shared key.
        run("CREATE ROLE tenancy_stranger");
        run("GRANT USAGE ON SCHEMA acme TO tenancy_stranger");
        run("SET LOCAL ROLE tenancy_stranger");
        fails(
            "SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_id'], 'public.plans')",
            "42501",
        );
        run("RESET ROLE");
        run(&format!("REVOKE REFERENCES ON public.plans FROM {owner}"));
        run(&format!("SET LOCAL ROLE {owner}"));
        let f = fails(
            "SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_id'], 'public.plans')",
            "42501",
        );
        assert!(
            f.hint.contains("GRANT REFERENCES ON public.plans"),
            "{}",
            f.hint
        );
        run("RESET ROLE");
        run(&format!("GRANT REFERENCES ON public.plans TO {owner}"));
        run(&format!("SET LOCAL ROLE {owner}"));
        // Types, keys, columns, actions.
        let f = fails(
            "SELECT tenancy.reference_shared('acme.orders', ARRAY['small'], 'public.plans')",
            "42804",
        );
        assert!(f.hint.contains("TYPE bigint"), "{}", f.hint);
        fails(
            "SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_code'], 'public.plans', ARRAY['label'])",
            "42830",
        );
        fails(
            "SELECT tenancy.reference_shared('acme.orders', ARRAY['nope'], 'public.plans')",
            "42703",
        );
        let f = fails(
            "SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_id'], 'public.plans', on_delete => 'cascade')",
            "0A000",
        );
        assert!(f.hint.contains("no action"), "{}", f.hint);
        fails(
            "SELECT tenancy.reference_shared('acme.orders', NULL, 'public.plans')",
            "22004",
        );
        // Rows already there are checked.
        run("INSERT INTO acme.orders VALUES (1, 77)");
        fails(
            "SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_id'], 'public.plans')",
            "23503",
        );
        run("UPDATE acme.orders SET plan_id = 1");
        assert_eq!(
            one::<String>("SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_id'], 'public.plans')::text").unwrap(),
            "orders_plan_id_shared_ref"
        );
        // Declaring it again is a no-op that returns its name.
        assert_eq!(
            one::<String>("SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_id'], 'public.plans')::text").unwrap(),
            "orders_plan_id_shared_ref"
        );
        // …only while pg_tenancy's trigger is there and enabled (a review found a disabled or
        // swapped trigger accepted as "declared already").
        run("ALTER TABLE acme.orders DISABLE TRIGGER orders_plan_id_shared_ref");
        fails(
            "SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_id'], 'public.plans')",
            "42710",
        );
        run("ALTER TABLE acme.orders ENABLE TRIGGER orders_plan_id_shared_ref");
        // A trigger of that name that runs another function: verify() says so.
        run("CREATE FUNCTION acme.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'");
        run("DROP TRIGGER orders_plan_id_shared_ref ON acme.orders");
        run("CREATE TRIGGER orders_plan_id_shared_ref AFTER INSERT OR UPDATE OF plan_id ON acme.orders FOR EACH ROW EXECUTE FUNCTION acme.noop()");
        let owner_now = one::<String>("SELECT current_user::text").unwrap();
        run("RESET ROLE");
        assert!(
            strings("SELECT problem FROM tenancy.verify() WHERE problem LIKE '%orders_plan_id_shared_ref%'")
                .iter()
                .any(|p| p.contains("not pg_tenancy's")),
            "verify() reports a swapped trigger"
        );
        run(&format!("SET LOCAL ROLE {owner_now}"));
        run("DROP TRIGGER orders_plan_id_shared_ref ON acme.orders");
        run("SELECT tenancy.reference_shared('acme.orders', ARRAY['plan_id'], 'public.plans')");
        run("RESET ROLE");
        assert_eq!(
            count(
                "SELECT 1 FROM tenancy.shared_presence WHERE referencing = 'acme.orders'::regclass"
            ),
            1
        );
    }

    /// The shared table's trigger fires as whoever deletes the row and reads tenant tables that
    /// role may not read: as each table's owner, row security not forced, in a
    /// security-restricted operation. A tenant owner's policy never runs as the deleter, and
    /// never hides a referencing row from the check.
    #[pg_test]
    fn a_tenant_owner_cannot_make_the_shared_trigger_run_its_code() {
        let owner = shared_plans();
        run("INSERT INTO acme.subscription (plan_id) VALUES (2)");
        run("CREATE ROLE tenancy_deleter");
        run("GRANT SELECT, DELETE, UPDATE ON public.plans TO tenancy_deleter");
        run(&format!("SET LOCAL ROLE {owner}"));
        run("CREATE TABLE acme.seen (who name)");
        run("GRANT INSERT ON acme.seen TO PUBLIC");
        run(
            "CREATE FUNCTION acme.sneaky() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$ \
             BEGIN INSERT INTO acme.seen VALUES (current_user); RETURN false; END $$",
        );
        run("GRANT EXECUTE ON FUNCTION acme.sneaky() TO PUBLIC");
        run("ALTER TABLE acme.subscription ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY");
        run("CREATE POLICY p ON acme.subscription USING (acme.sneaky())");
        run("RESET ROLE");
        run("SET LOCAL ROLE tenancy_deleter");
        let f = fails("DELETE FROM public.plans WHERE id = 2", "23503");
        assert!(f.message.contains("acme.subscription"), "{}", f.message);
        run("DELETE FROM public.plans WHERE id = 3");
        run("RESET ROLE");
        assert_eq!(
            count("SELECT 1 FROM acme.seen WHERE who <> 'tenancy_owner'"),
            0
        );
        // A trigger made by hand with pg_tenancy's function enforces nothing it was not given.
        run(&format!("SET LOCAL ROLE {owner}"));
        run("CREATE TABLE acme.fake (plan_id bigint)");
        run("CREATE TRIGGER fake AFTER INSERT ON acme.fake FOR EACH ROW EXECUTE FUNCTION tenancy._shared_ref_check()");
        fails("INSERT INTO acme.fake VALUES (1)", "55000");
        run("RESET ROLE");
    }

    #[pg_test]
    fn verify_reports_native_foreign_keys_to_shared_tables() {
        setup();
        let owner = tenant_owner();
        run(&format!("SELECT tenancy.create_tenant('acme', '{owner}')"));
        run(&format!(
            "SELECT tenancy.create_tenant('globex', '{owner}')"
        ));
        // A few tenants' native keys are not worth a line (past 1 000 tenants they are).
        assert_eq!(count("SELECT * FROM tenancy.verify()"), 0);
        // Once the table is shared, the native keys left are reported with the fix.
        run("SELECT tenancy.share_table('public.plans')");
        let problems = strings(
            "SELECT problem FROM tenancy.verify() WHERE problem LIKE '%native foreign keys%'",
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("2 native foreign keys from 2 tenants")
                && problems[0].contains("carries 6 triggers")
                && problems[0].contains("tenancy.reference_shared"),
            "{}",
            problems[0]
        );
        // Converting one tenant explicitly: reference_shared drops the native key it replaces.
        run(&format!("SET LOCAL ROLE {owner}"));
        run("SELECT tenancy.reference_shared('acme.subscription', ARRAY['plan_id'], 'public.plans')");
        run("RESET ROLE");
        let problems = strings(
            "SELECT problem FROM tenancy.verify() WHERE problem LIKE '%native foreign keys%'",
        );
        assert!(
            problems.len() == 1
                && problems[0].contains("1 native foreign keys from 1 tenants (first: globex)"),
            "{problems:?}"
        );
        fails_bare("SELECT 1/0", "22012");
    }
    /// A hostile review (issue 15): pg_tenancy's trigger functions attached by hand as statement
    /// triggers crashed the server (they read row pointers that statement triggers do not have).
    /// Now refused with 39P01 before a tuple is read.
    #[pg_test]
    fn hand_made_triggers_with_pg_tenancys_functions_are_refused() {
        let owner = shared_plans();
        run("CREATE SCHEMA m");
        run("CREATE TABLE m.own (id int PRIMARY KEY)");
        run("SELECT tenancy.share_table('m.own')");
        run("CREATE TRIGGER x BEFORE TRUNCATE ON m.own FOR EACH STATEMENT EXECUTE FUNCTION tenancy._shared_guard()");
        fails("TRUNCATE m.own", "39P01");
        // The tenant side: its reference trigger recreated by hand as a statement trigger.
        run(&format!("SET LOCAL ROLE {owner}"));
        run("DROP TRIGGER subscription_plan_id_shared_ref ON acme.subscription");
        run("CREATE TRIGGER subscription_plan_id_shared_ref AFTER INSERT OR UPDATE ON acme.subscription \
             FOR EACH STATEMENT EXECUTE FUNCTION tenancy._shared_ref_check()");
        let f = fails(
            "INSERT INTO acme.subscription (plan_id) VALUES (2)",
            "39P01",
        );
        assert!(
            f.message.contains("not created by pg_tenancy"),
            "{}",
            f.message
        );
        run("RESET ROLE");
    }

    /// A hostile review (issue 15): the referencing column's type changed behind the trigger's
    /// back (drop trigger, ALTER COLUMN TYPE, same trigger again) was read as the key's type and
    /// crashed the server. Now the types are checked at every firing: 42804 naming the column.
    #[pg_test]
    fn a_referencing_column_of_another_type_is_refused() {
        let owner = shared_plans();
        run("CREATE TABLE public.codes (code text PRIMARY KEY)");
        run("INSERT INTO public.codes VALUES ('gold')");
        run(&format!(
            "GRANT SELECT, REFERENCES ON public.codes TO {owner}"
        ));
        run("SELECT tenancy.share_table('public.codes')");
        run(&format!("SET LOCAL ROLE {owner}"));
        run("CREATE TABLE acme.badge (id int PRIMARY KEY, code text)");
        run("SELECT tenancy.reference_shared('acme.badge', ARRAY['code'], 'public.codes')");
        run("INSERT INTO acme.badge VALUES (1, 'gold')");
        run("DROP TRIGGER badge_code_shared_ref ON acme.badge");
        run("ALTER TABLE acme.badge ALTER COLUMN code TYPE bigint USING NULL");
        run(
            "CREATE TRIGGER badge_code_shared_ref AFTER INSERT OR UPDATE OF code ON acme.badge \
             FOR EACH ROW EXECUTE FUNCTION tenancy._shared_ref_check()",
        );
        let f = fails("INSERT INTO acme.badge VALUES (2, 12345)", "42804");
        assert!(
            f.message.contains("acme.badge.code is bigint"),
            "{}",
            f.message
        );
        run("RESET ROLE");
    }

    /// A hostile review (issue 15): the key a tenant noted and the key a delete looked up were
    /// printed differently (a cast on one side, the output function under the session's settings
    /// on the other), so deletes of referenced rows went through: char(n), inet, timestamptz under
    /// another TimeZone, bytea under another bytea_output, numeric re-keyed to an equal value.
    #[pg_test]
    fn a_referenced_key_is_found_however_it_prints() {
        let owner = shared_plans();
        run(&format!("SET LOCAL ROLE {owner}"));
        run("CREATE TABLE acme.uses (id serial PRIMARY KEY, c char(5), i inet, t timestamptz, b bytea, n numeric)");
        run("RESET ROLE");
        for (col, typ, value) in [
            ("c", "char(5)", "'ab'"),
            ("i", "inet", "'10.0.0.1/32'"),
            ("t", "timestamptz", "'2026-01-01 12:00+00'"),
            ("b", "bytea", "'\\x6869'"),
            ("n", "numeric", "1.0"),
        ] {
            run(&format!(
                "CREATE TABLE public.k_{col} (k {typ} PRIMARY KEY)"
            ));
            run(&format!("INSERT INTO public.k_{col} VALUES ({value})"));
            run(&format!(
                "GRANT SELECT, REFERENCES ON public.k_{col} TO {owner}"
            ));
            run(&format!("SELECT tenancy.share_table('public.k_{col}')"));
            run(&format!("SET LOCAL ROLE {owner}"));
            run(&format!(
                "SELECT tenancy.reference_shared('acme.uses', ARRAY['{col}'], 'public.k_{col}')"
            ));
            run("SET LOCAL TimeZone = 'UTC'");
            run("SET LOCAL bytea_output = 'hex'");
            run(&format!("INSERT INTO acme.uses ({col}) VALUES ({value})"));
            run("RESET ROLE");
            run("SET LOCAL TimeZone = 'Asia/Tokyo'");
            run("SET LOCAL bytea_output = 'escape'");
            run("SET LOCAL extra_float_digits = 3");
            if col == "n" {
                // Re-keyed to an equal value that prints differently, then deleted.
                run("UPDATE public.k_n SET k = 1.00");
            }
            fails(&format!("DELETE FROM public.k_{col}"), "23503");
            run("RESET TimeZone");
            run("RESET bytea_output");
        }
    }

    /// A hostile review (issue 15): renaming or dropping a referencing column, renaming the shared
    /// key, or a reference whose trigger is gone left registrations that broke every later delete
    /// of the shared table (42703) or let references go unchecked without a word from verify().
    #[pg_test]
    fn renames_drops_and_disabled_triggers_are_followed_or_reported() {
        let owner = shared_plans();
        run("INSERT INTO acme.subscription (plan_id) VALUES (2)");
        run(&format!("SET LOCAL ROLE {owner}"));
        run("ALTER TABLE acme.subscription RENAME COLUMN plan_id TO plan");
        run("RESET ROLE");
        fails("DELETE FROM public.plans WHERE id = 2", "23503");
        fails(
            "INSERT INTO globex.subscription (plan_id) VALUES (99)",
            "23503",
        );
        run("ALTER TABLE public.plans RENAME COLUMN id TO plan_no");
        let f = fails("DELETE FROM public.plans WHERE plan_no = 2", "23503");
        assert!(f.message.contains("(plan_no)=(2)"), "{}", f.message);
        run("DELETE FROM public.plans WHERE plan_no = 3");
        fails("UPDATE acme.subscription SET plan = 42", "23503");
        // share_table again with the renamed key: the same key, so allowed while referenced.
        run("SELECT tenancy.share_table('public.plans')");
        // A disabled trigger on either side is reported with the fix.
        run("ALTER TABLE public.plans DISABLE TRIGGER USER");
        run(&format!("SET LOCAL ROLE {owner}"));
        run("ALTER TABLE globex.subscription DISABLE TRIGGER subscription_plan_id_shared_ref");
        run("RESET ROLE");
        let problems = strings(
            "SELECT coalesce(schema_name, '-') || ': ' || problem FROM tenancy.verify() ORDER BY 1",
        );
        assert!(
            problems.iter().any(|p| p.starts_with("globex: ")
                && p.contains("is not enforced: its trigger is disabled")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .filter(|p| p.contains("shared table public.plans: its trigger"))
                .count()
                == 2,
            "{problems:?}"
        );
        run("ALTER TABLE public.plans ENABLE TRIGGER USER");
        // Dropping the referencing column drops its trigger; the reference enforces nothing and
        // deletes of the shared table work again (no 42703 from a stale registration).
        run(&format!("SET LOCAL ROLE {owner}"));
        run("ALTER TABLE acme.subscription DROP COLUMN plan CASCADE");
        run("RESET ROLE");
        run("DELETE FROM public.plans WHERE plan_no = 2");
        // A reference whose trigger is gone can be declared again.
        run(&format!("SET LOCAL ROLE {owner}"));
        run("ALTER TABLE acme.subscription ADD COLUMN plan_id bigint");
        run("SELECT tenancy.reference_shared('acme.subscription', ARRAY['plan_id'], 'public.plans')");
        fails("UPDATE acme.subscription SET plan_id = 2", "23503");
        run("RESET ROLE");
    }
}
