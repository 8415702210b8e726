//! Attribute (column) tenancy: row-level security and composite foreign keys.

#[pgrx::pg_schema]
mod tests {
    use crate::in_db::support::{count, fails, fails_bare, lit, one, run, setup};
    use pgrx::prelude::*;

    fn attribute_tables() {
        setup();
        run("CREATE TABLE public.projects_a (tenant_id text NOT NULL, id int PRIMARY KEY, name text)");
        run("CREATE TABLE public.tasks_a (tenant_id text NOT NULL, id int PRIMARY KEY, project_id int, plan_id bigint)");
        run("SELECT tenancy.enable_attribute_tenancy('projects_a', 'tenant_id')");
        run("SELECT tenancy.enable_attribute_tenancy('tasks_a', 'tenant_id')");
        run("SELECT tenancy.add_attribute_tenant('acme'), tenancy.add_attribute_tenant('globex')");
        run("CREATE ROLE tenancy_app");
        run("GRANT SELECT, INSERT, UPDATE, DELETE ON public.projects_a, public.tasks_a TO tenancy_app");
    }

    #[pg_test]
    fn attribute_tenancy_limits_an_ordinary_role_to_its_tenant() {
        attribute_tables();
        assert_eq!(one::<bool>("SELECT relforcerowsecurity AND relrowsecurity FROM pg_class WHERE oid = 'projects_a'::regclass"), Some(true));
        run("SET LOCAL ROLE tenancy_app");
        // No tenant set: nothing visible, nothing insertable.
        assert_eq!(count("SELECT 1 FROM projects_a"), 0);
        fails_bare("INSERT INTO projects_a VALUES ('acme', 1, 'p')", "42501");
        run("SELECT tenancy.set_tenant('acme')");
        assert_eq!(
            one::<String>("SELECT tenancy.current_tenant()::text").unwrap(),
            "acme"
        );
        run("INSERT INTO projects_a VALUES ('acme', 1, 'rocket'), ('acme', 2, 'anvil')");
        // Writing another tenant's row is refused by the policy's WITH CHECK.
        fails_bare(
            "INSERT INTO projects_a VALUES ('globex', 3, 'doom')",
            "42501",
        );
        run("SELECT tenancy.set_tenant('globex')");
        assert_eq!(count("SELECT 1 FROM projects_a"), 0);
        run("INSERT INTO projects_a VALUES ('globex', 3, 'doom')");
        assert_eq!(count("SELECT 1 FROM projects_a"), 1);
        assert_eq!(
            one::<i64>(
                "WITH u AS (UPDATE projects_a SET name = 'x' RETURNING 1) SELECT count(*) FROM u"
            ),
            Some(1)
        );
        run("SELECT tenancy.set_tenant('acme')");
        assert_eq!(count("SELECT 1 FROM projects_a"), 2);
        fails("SELECT tenancy.set_tenant('initech')", "42704");
        run("RESET ROLE");
        assert_eq!(
            count("SELECT 1 FROM projects_a"),
            3,
            "superusers bypass row-level security"
        );
        // The owner is bound too (FORCE): make the app role the owner and look again.
        run("ALTER TABLE projects_a OWNER TO tenancy_app");
        run("SET LOCAL ROLE tenancy_app");
        run("SELECT tenancy.set_tenant('globex')");
        assert_eq!(count("SELECT 1 FROM projects_a"), 1);
        run("RESET ROLE");
    }

    #[pg_test]
    fn attribute_foreign_keys_are_composite() {
        attribute_tables();
        let fk = one::<String>(
            "SELECT tenancy.add_foreign_key('tasks_a', ARRAY['project_id'], 'projects_a')::text",
        )
        .unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = {}",
                lit(&fk)
            ))
            .unwrap(),
            "FOREIGN KEY (tenant_id, project_id) REFERENCES projects_a(tenant_id, id)"
        );
        // The unique constraint the target needs was added.
        assert_eq!(
            count("SELECT 1 FROM pg_constraint WHERE conrelid = 'projects_a'::regclass AND contype = 'u'"),
            1
        );
        // Even with row-level security bypassed (superuser), a row cannot reference another
        // tenant's row.
        run("INSERT INTO projects_a VALUES ('acme', 1, 'rocket')");
        run("INSERT INTO tasks_a VALUES ('acme', 10, 1)");
        let f = fails_bare("INSERT INTO tasks_a VALUES ('globex', 11, 1)", "23503");
        assert!(f.message.contains(&fk), "{}", f.message);
        // To a table that is not an attribute table: a plain key.
        let plain = one::<String>(
            "SELECT tenancy.add_foreign_key('tasks_a', ARRAY['plan_id'], 'plans')::text",
        )
        .unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = {}",
                lit(&plain)
            ))
            .unwrap(),
            "FOREIGN KEY (plan_id) REFERENCES plans(id)"
        );
        fails(
            "SELECT tenancy.add_foreign_key('tasks_a', ARRAY['nope'], 'projects_a')",
            "42703",
        );
        fails(
            "SELECT tenancy.enable_attribute_tenancy('tasks_a', 'nope')",
            "42703",
        );
        fails("SELECT tenancy.add_foreign_key('tasks_a', ARRAY['project_id', 'plan_id'], 'projects_a', ARRAY['id'])", "22023");
        fails("SELECT tenancy.remove_attribute_tenant('initech')", "42704");
    }
}
