use super::*;

fn col(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        ty: ty.into(),
        not_null: false,
        default: None,
        generated: None,
        identity: None,
        identity_options: None,
        collation: None,
    }
}

fn table(cols: Vec<Column>) -> Table {
    Table {
        columns: cols,
        ..Default::default()
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A constraint other than a foreign key, as describe_schema reports it.
fn constraint(kind: ConstraintKind, def: &str, columns: &[&str]) -> Constraint {
    Constraint {
        kind,
        def: def.into(),
        columns: strings(columns),
        deferrable: false,
        initially_deferred: false,
        validated: true,
        foreign_key: None,
    }
}

/// A foreign key to a table of the described schema: MATCH SIMPLE, NO ACTION, not deferrable.
/// `def` is what pg_get_constraintdef prints for it.
fn foreign_key(def: &str, columns: &[&str], table: &str, ref_columns: &[&str]) -> Constraint {
    Constraint {
        foreign_key: Some(ForeignKey {
            schema: None,
            table: table.into(),
            columns: strings(ref_columns),
            match_type: MatchType::Simple,
            on_update: FkAction::NoAction,
            on_delete: FkAction::NoAction,
            on_delete_columns: None,
        }),
        ..constraint(ConstraintKind::Foreign, def, columns)
    }
}

fn fk_mut(c: &mut Constraint) -> &mut ForeignKey {
    c.foreign_key.as_mut().unwrap()
}

/// `projects` and `tasks`, both attribute tables with tenant column `tenant_id`; `tasks` has the
/// foreign key `fk` (named `tasks_project_fkey`) and a column for each of its key columns.
fn attribute_pair(fk: Constraint) -> (Schema, TenantColumns) {
    let mut s = Schema::default();
    s.tables.insert(
        "projects".into(),
        table(vec![col("tenant_id", "text"), col("id", "integer")]),
    );
    let mut tasks = table(vec![col("tenant_id", "text")]);
    for c in &fk.columns {
        tasks.columns.push(col(c, "integer"));
    }
    tasks.constraints.insert("tasks_project_fkey".into(), fk);
    s.tables.insert("tasks".into(), tasks);
    let tenants: TenantColumns = [
        ("projects".to_string(), "tenant_id".to_string()),
        ("tasks".to_string(), "tenant_id".to_string()),
    ]
    .into();
    (s, tenants)
}

/// The statement adding `tasks_project_fkey`.
fn added_fk(ddl: &[String]) -> &str {
    ddl.iter()
        .find(|s| s.contains("ADD CONSTRAINT \"tasks_project_fkey\""))
        .unwrap_or_else(|| panic!("no foreign key in {ddl:#?}"))
}

#[test]
fn nothing_to_do() {
    let s = Schema::default();
    assert!(diff(&s, &s, &TenantColumns::new()).is_empty());
    assert!(render(&[], "t").contains("nothing to do"));
}

#[test]
fn add_column_is_one_statement() {
    let mut a = Schema::default();
    a.tables
        .insert("users".into(), table(vec![col("id", "bigint")]));
    let mut b = a.clone();
    let mut c = col("nick name", "text");
    c.default = Some("''::text".into());
    b.tables.get_mut("users").unwrap().columns.push(c);
    assert_eq!(
        diff(&a, &b, &TenantColumns::new()),
        vec!["ALTER TABLE \"users\" ADD COLUMN \"nick name\" text DEFAULT ''::text"]
    );
    assert_eq!(
        differences(&a, &b),
        vec![(
            "table users".to_string(),
            "column nick name: only in the second schema (text DEFAULT ''::text)".to_string()
        )]
    );
}

#[test]
fn creates_come_in_dependency_order_and_drops_in_reverse() {
    let a = Schema::default();
    let mut b = Schema::default();
    let mut parent = table(vec![col("id", "integer")]);
    parent.constraints.insert(
        "parent_pkey".into(),
        constraint(ConstraintKind::Primary, "PRIMARY KEY (id)", &["id"]),
    );
    let mut child = table(vec![col("parent_id", "integer")]);
    child.constraints.insert(
        "child_parent_fkey".into(),
        foreign_key(
            "FOREIGN KEY (parent_id) REFERENCES parent(id)",
            &["parent_id"],
            "parent",
            &["id"],
        ),
    );
    child.indexes.insert(
        "child_idx".into(),
        "CREATE INDEX child_idx ON child USING btree (parent_id)".into(),
    );
    b.tables.insert("child".into(), child);
    b.tables.insert("parent".into(), parent);
    b.views.insert(
        "v2".into(),
        View {
            def: " SELECT * FROM v1;".into(),
            materialized: false,
            depends_on: vec!["v1".into()],
        },
    );
    b.views.insert(
        "v1".into(),
        View {
            def: " SELECT * FROM child;".into(),
            materialized: false,
            depends_on: vec!["child".into()],
        },
    );
    let ddl = diff(&a, &b, &TenantColumns::new());
    let pos = |needle: &str| {
        ddl.iter()
            .position(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {ddl:#?}"))
    };
    assert!(pos("CREATE TABLE \"parent\"") < pos("ADD CONSTRAINT \"parent_pkey\""));
    assert!(pos("ADD CONSTRAINT \"parent_pkey\"") < pos("child_parent_fkey"));
    assert!(pos("CREATE INDEX child_idx") < pos("child_parent_fkey"));
    assert!(pos("CREATE VIEW \"v1\"") < pos("CREATE VIEW \"v2\""));
    let back = diff(&b, &a, &TenantColumns::new());
    let pos = |needle: &str| {
        back.iter()
            .position(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {back:#?}"))
    };
    assert!(pos("DROP VIEW IF EXISTS \"v2\"") < pos("DROP VIEW IF EXISTS \"v1\""));
    assert!(pos("DROP VIEW IF EXISTS \"v1\"") < pos("DROP TABLE"));
    assert!(pos("child_parent_fkey") < pos("DROP TABLE"));
}

#[test]
fn attribute_foreign_keys_come_out_composite() {
    let mut b = Schema::default();
    b.tables.insert(
        "projects".into(),
        table(vec![col("tenant_id", "text"), col("id", "integer")]),
    );
    let mut tasks = table(vec![col("tenant_id", "text"), col("project_id", "integer")]);
    let mut fk = foreign_key(
        "FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE",
        &["project_id"],
        "projects",
        &["id"],
    );
    fk_mut(&mut fk).on_delete = FkAction::Cascade;
    tasks.constraints.insert("tasks_project_fkey".into(), fk);
    b.tables.insert("tasks".into(), tasks);
    let tenants: TenantColumns = [
        ("projects".to_string(), "tenant_id".to_string()),
        ("tasks".to_string(), "tenant_id".to_string()),
    ]
    .into();
    let ddl = diff(&Schema::default(), &b, &tenants);
    assert!(
        ddl.contains(&"ALTER TABLE \"projects\" ADD UNIQUE (\"tenant_id\", \"id\")".to_string()),
        "{ddl:#?}"
    );
    assert!(
        ddl.contains(&"ALTER TABLE \"tasks\" ADD CONSTRAINT \"tasks_project_fkey\" FOREIGN KEY (\"tenant_id\", \"project_id\") REFERENCES \"projects\"(\"tenant_id\", \"id\") ON DELETE CASCADE".to_string()),
        "{ddl:#?}"
    );
    // Without attribute tables: untouched.
    let plain = diff(&Schema::default(), &b, &TenantColumns::new());
    assert!(
        plain
            .iter()
            .any(|s| s
                .ends_with("FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE"))
    );
}

#[test]
fn column_changes() {
    let mut a = Schema::default();
    let mut c = col("n", "integer");
    c.default = Some("1".into());
    a.tables
        .insert("t".into(), table(vec![c.clone(), col("gone", "text")]));
    let mut b = Schema::default();
    let mut c2 = col("n", "bigint");
    c2.not_null = true;
    b.tables.insert("t".into(), table(vec![c2]));
    assert_eq!(
        diff(&a, &b, &TenantColumns::new()),
        vec![
            "ALTER TABLE \"t\" DROP COLUMN \"gone\"",
            "ALTER TABLE \"t\" ALTER COLUMN \"n\" TYPE bigint USING \"n\"::bigint",
            "ALTER TABLE \"t\" ALTER COLUMN \"n\" DROP DEFAULT",
            "ALTER TABLE \"t\" ALTER COLUMN \"n\" SET NOT NULL",
        ]
    );
}

#[test]
fn identity_options_are_created_and_changed_in_place() {
    let mut c = col("id", "integer");
    c.identity = Some("ALWAYS".into());
    c.identity_options = Some("INCREMENT BY 5 MAXVALUE 1000 CACHE 3".into());
    let mut b = Schema::default();
    b.tables.insert("t".into(), table(vec![c.clone()]));
    assert_eq!(
        diff(&Schema::default(), &b, &TenantColumns::new()),
        vec!["CREATE TABLE \"t\" (\n    \"id\" integer GENERATED ALWAYS AS IDENTITY (INCREMENT BY 5 MAXVALUE 1000 CACHE 3)\n)"]
    );
    let mut c2 = c.clone();
    c2.identity_options = Some("INCREMENT BY 2 CYCLE".into());
    let mut b2 = Schema::default();
    b2.tables.insert("t".into(), table(vec![c2]));
    assert_eq!(
        diff(&b, &b2, &TenantColumns::new()),
        vec!["ALTER TABLE \"t\" ALTER COLUMN \"id\" SET INCREMENT BY 2 SET CYCLE SET NO MAXVALUE SET CACHE 1"]
    );
    let mut c3 = c.clone();
    c3.identity_options = Some("INCREMENT BY 3 START WITH 5".into());
    let mut b3 = Schema::default();
    b3.tables.insert("t".into(), table(vec![c3]));
    assert_eq!(
        diff(&b3, &b, &TenantColumns::new()),
        vec!["ALTER TABLE \"t\" ALTER COLUMN \"id\" SET INCREMENT BY 5 SET MAXVALUE 1000 SET CACHE 3 SET START WITH 1"],
        "a START WITH only the old options set goes back to its default"
    );
}

#[test]
fn policy_roles_are_part_of_the_policy() {
    let p = Policy {
        cmd: "SELECT".into(),
        permissive: true,
        using: Some("true".into()),
        check: None,
        roles: vec!["app".into(), "\"Readers\"".into()],
    };
    assert_eq!(
        super::creates::policy_clauses(&p),
        "AS PERMISSIVE FOR SELECT TO app, \"Readers\" USING (true)"
    );
}

#[test]
fn a_closing_parenthesis_in_a_column_name_still_gives_a_composite_key() {
    // The key column is named proj)id: pg_get_constraintdef prints
    // FOREIGN KEY ("proj)id") REFERENCES projects(id), which the old text splitting cut at the
    // first ")" and so left without the tenant column, silently.
    let fk = foreign_key(
        "FOREIGN KEY (\"proj)id\") REFERENCES projects(id)",
        &["proj)id"],
        "projects",
        &["id"],
    );
    let (b, tenants) = attribute_pair(fk);
    let ddl = diff(&Schema::default(), &b, &tenants);
    assert_eq!(
        added_fk(&ddl),
        "ALTER TABLE \"tasks\" ADD CONSTRAINT \"tasks_project_fkey\" FOREIGN KEY (\"tenant_id\", \"proj)id\") REFERENCES \"projects\"(\"tenant_id\", \"id\")"
    );
    let unique = "ALTER TABLE \"projects\" ADD UNIQUE (\"tenant_id\", \"id\")".to_string();
    let (u, f) = (
        ddl.iter().position(|s| *s == unique),
        ddl.iter().position(|s| s.contains("tasks_project_fkey")),
    );
    assert!(u.is_some() && u < f, "{ddl:#?}");
}

#[test]
fn names_on_the_referenced_side_are_quoted_too() {
    // A quote in the table name, ", " and ")" in the referenced column's name.
    let mut fk = foreign_key(
        "FOREIGN KEY (a) REFERENCES \"pro\"\"jects\"(\"x, y)\")",
        &["a"],
        "pro\"jects",
        &["x, y)"],
    );
    fk_mut(&mut fk).on_delete = FkAction::Cascade;
    let (mut b, mut tenants) = attribute_pair(fk);
    let projects = b.tables.remove("projects").unwrap();
    b.tables.insert("pro\"jects".into(), projects);
    tenants.insert("pro\"jects".into(), "tenant id".into());
    let ddl = diff(&Schema::default(), &b, &tenants);
    assert_eq!(
        added_fk(&ddl),
        "ALTER TABLE \"tasks\" ADD CONSTRAINT \"tasks_project_fkey\" FOREIGN KEY (\"tenant_id\", \"a\") REFERENCES \"pro\"\"jects\"(\"tenant id\", \"x, y)\") ON DELETE CASCADE"
    );
    assert!(
        ddl.contains(
            &"ALTER TABLE \"pro\"\"jects\" ADD UNIQUE (\"tenant id\", \"x, y)\")".to_string()
        ),
        "{ddl:#?}"
    );
}

#[test]
fn a_composite_key_keeps_its_clauses() {
    let mut fk = foreign_key(
        "FOREIGN KEY (project_id) REFERENCES projects(id) MATCH FULL ON UPDATE RESTRICT ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED",
        &["project_id"],
        "projects",
        &["id"],
    );
    let f = fk_mut(&mut fk);
    f.match_type = MatchType::Full;
    f.on_update = FkAction::Restrict;
    f.on_delete = FkAction::Cascade;
    fk.deferrable = true;
    fk.initially_deferred = true;
    let (b, tenants) = attribute_pair(fk);
    assert_eq!(
        added_fk(&diff(&Schema::default(), &b, &tenants)),
        "ALTER TABLE \"tasks\" ADD CONSTRAINT \"tasks_project_fkey\" FOREIGN KEY (\"tenant_id\", \"project_id\") REFERENCES \"projects\"(\"tenant_id\", \"id\") MATCH FULL ON UPDATE RESTRICT ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED"
    );

    // ON DELETE SET NULL of some columns, DEFERRABLE INITIALLY IMMEDIATE, NOT VALID.
    let mut fk = foreign_key(
        "FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE SET NULL (project_id) DEFERRABLE NOT VALID",
        &["project_id"],
        "projects",
        &["id"],
    );
    let f = fk_mut(&mut fk);
    f.on_delete = FkAction::SetNull;
    f.on_delete_columns = Some(vec!["project_id".into()]);
    fk.deferrable = true;
    fk.validated = false;
    let (b, tenants) = attribute_pair(fk);
    assert_eq!(
        added_fk(&diff(&Schema::default(), &b, &tenants)),
        "ALTER TABLE \"tasks\" ADD CONSTRAINT \"tasks_project_fkey\" FOREIGN KEY (\"tenant_id\", \"project_id\") REFERENCES \"projects\"(\"tenant_id\", \"id\") ON DELETE SET NULL (\"project_id\") DEFERRABLE NOT VALID"
    );
}

#[test]
fn keys_already_composite_or_to_shared_tables_are_replayed() {
    // Already leads with the tenant column.
    let def = "FOREIGN KEY (tenant_id, project_id) REFERENCES projects(tenant_id, id)";
    let fk = foreign_key(
        def,
        &["tenant_id", "project_id"],
        "projects",
        &["tenant_id", "id"],
    );
    let (b, tenants) = attribute_pair(fk);
    let ddl = diff(&Schema::default(), &b, &tenants);
    assert!(added_fk(&ddl).ends_with(&format!(" {def}")), "{ddl:#?}");
    assert!(!ddl.iter().any(|s| s.contains("ADD UNIQUE")), "{ddl:#?}");
    // A table of a shared schema is no attribute table, even under an attribute table's name.
    let def = "FOREIGN KEY (project_id) REFERENCES public.projects(id)";
    let mut fk = foreign_key(def, &["project_id"], "projects", &["id"]);
    fk_mut(&mut fk).schema = Some("public".into());
    let (b, tenants) = attribute_pair(fk);
    let ddl = diff(&Schema::default(), &b, &tenants);
    assert!(added_fk(&ddl).ends_with(&format!(" {def}")), "{ddl:#?}");
}

#[test]
fn an_unedited_schema_with_composite_keys_gives_nothing_to_do() {
    let mut fk = foreign_key(
        "FOREIGN KEY (\"proj)id\") REFERENCES projects(id) ON DELETE CASCADE",
        &["proj)id"],
        "projects",
        &["id"],
    );
    fk_mut(&mut fk).on_delete = FkAction::Cascade;
    let (s, tenants) = attribute_pair(fk);
    assert!(diff(&s, &s.clone(), &tenants).is_empty());
    assert!(differences(&s, &s.clone()).is_empty());
    // A changed clause alone is a difference, and replaces the key.
    let mut t = s.clone();
    let c = t
        .tables
        .get_mut("tasks")
        .unwrap()
        .constraints
        .get_mut("tasks_project_fkey")
        .unwrap();
    fk_mut(c).on_delete = FkAction::Restrict;
    assert_eq!(
        differences(&s, &t),
        vec![(
            "table tasks".to_string(),
            "constraint tasks_project_fkey: differs in how it is kept (deferrable false/false, initially deferred false/false, validated true/true: first/second schema)".to_string()
        )]
    );
    let ddl = diff(&s, &t, &tenants);
    assert_eq!(
        ddl[0],
        "ALTER TABLE \"tasks\" DROP CONSTRAINT IF EXISTS \"tasks_project_fkey\""
    );
    assert!(added_fk(&ddl).ends_with(" ON DELETE RESTRICT"), "{ddl:#?}");
}

#[test]
fn constraints_read_as_describe_schema_writes_them() {
    let json = r#"{"tables": {"tasks": {"constraints": {
        "tasks_pkey": {"kind": "primary", "def": "PRIMARY KEY (id)", "columns": ["id"],
                       "deferrable": false, "initially_deferred": false, "validated": true,
                       "foreign_key": null},
        "tasks_fkey": {"kind": "foreign", "def": "FOREIGN KEY (\"proj)id\") REFERENCES public.p(id) MATCH FULL ON DELETE SET NULL (\"proj)id\")",
                       "columns": ["proj)id"], "deferrable": true, "initially_deferred": false,
                       "validated": true,
                       "foreign_key": {"schema": "public", "table": "p", "columns": ["id"],
                                       "match": "full", "on_update": "no_action",
                                       "on_delete": "set_null", "on_delete_columns": ["proj)id"]}}}}}}"#;
    let s: Schema = serde_json::from_str(json).unwrap();
    let cons = &s.tables["tasks"].constraints;
    assert_eq!(cons["tasks_pkey"].kind, ConstraintKind::Primary);
    let fk = &cons["tasks_fkey"];
    assert_eq!(fk.kind, ConstraintKind::Foreign);
    assert_eq!(fk.columns, vec!["proj)id"]);
    assert!(fk.deferrable);
    let f = fk.foreign_key.as_ref().unwrap();
    assert_eq!(f.schema.as_deref(), Some("public"));
    assert_eq!(
        (f.match_type, f.on_update, f.on_delete),
        (MatchType::Full, FkAction::NoAction, FkAction::SetNull)
    );
    assert_eq!(f.on_delete_columns, Some(vec!["proj)id".to_string()]));
    // An unknown kind (describe_schema maps an unknown catalog code to null) is refused, not
    // guessed at.
    let unknown = json.replace("\"kind\": \"primary\"", "\"kind\": null");
    assert!(serde_json::from_str::<Schema>(&unknown).is_err());
}

fn partition(parent: &str, bound: &str, cols: Vec<Column>) -> Table {
    Table {
        partition_of: Some(PartitionOf {
            schema: None,
            table: parent.into(),
            bound: bound.into(),
        }),
        ..table(cols)
    }
}

/// `events` partitioned by range of `at`, with the partition `events_2024`.
fn events() -> Schema {
    let mut s = Schema::default();
    let cols = vec![col("id", "bigint"), col("at", "date")];
    s.tables.insert(
        "events".into(),
        Table {
            partition_by: Some("RANGE (at)".into()),
            ..table(cols.clone())
        },
    );
    s.tables.insert(
        "events_2024".into(),
        partition(
            "events",
            "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
            cols,
        ),
    );
    s
}

#[test]
fn partitioned_tables_come_before_their_partitions_which_take_their_columns() {
    let mut s = events();
    // A partition named before its parent still comes after it.
    let cols = s.tables["events"].columns.clone();
    s.tables
        .insert("a_events_old".into(), partition("events", "DEFAULT", cols));
    let ddl = diff(&Schema::default(), &s, &TenantColumns::new());
    assert_eq!(
        ddl,
        vec![
            "CREATE TABLE \"events\" (\n    \"id\" bigint,\n    \"at\" date\n) PARTITION BY RANGE (at)",
            "CREATE TABLE \"a_events_old\" PARTITION OF \"events\" DEFAULT",
            "CREATE TABLE \"events_2024\" PARTITION OF \"events\" FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        ]
    );
    assert!(diff(&s, &s.clone(), &TenantColumns::new()).is_empty());
    assert!(differences(&s, &s.clone()).is_empty());
}

#[test]
fn a_column_change_on_a_partitioned_table_is_made_once() {
    let a = events();
    let mut b = a.clone();
    let mut source = col("source", "text");
    source.default = Some("'web'::text".into());
    for t in ["events", "events_2024"] {
        let cols = &mut b.tables.get_mut(t).unwrap().columns;
        cols.push(source.clone());
        cols.retain(|c| c.name != "id");
    }
    // The partition's own default.
    b.tables.get_mut("events_2024").unwrap().columns[1].default = Some("'import'::text".into());
    assert_eq!(
        diff(&a, &b, &TenantColumns::new()),
        vec![
            "ALTER TABLE \"events\" DROP COLUMN \"id\"",
            "ALTER TABLE \"events\" ADD COLUMN \"source\" text DEFAULT 'web'::text",
            "ALTER TABLE \"events_2024\" ALTER COLUMN \"source\" SET DEFAULT 'import'::text",
        ]
    );
}

#[test]
fn a_changed_partition_key_or_bound_drops_and_creates_again() {
    let a = events();
    let mut b = a.clone();
    b.tables.get_mut("events").unwrap().partition_by = Some("LIST (at)".into());
    b.tables
        .get_mut("events_2024")
        .unwrap()
        .partition_of
        .as_mut()
        .unwrap()
        .bound = "FOR VALUES IN ('2024-01-01')".into();
    let ddl = diff(&a, &b, &TenantColumns::new());
    assert_eq!(ddl[0], "DROP TABLE \"events\", \"events_2024\"");
    assert!(ddl[1].ends_with("PARTITION BY LIST (at)"), "{ddl:#?}");
    assert!(
        ddl[2].contains("PARTITION OF \"events\" FOR VALUES IN"),
        "{ddl:#?}"
    );
    assert_eq!(
        differences(&a, &b),
        vec![
            (
                "table events".to_string(),
                "partitioned by RANGE (at) in the first schema, partitioned by LIST (at) in the second schema".to_string()
            ),
            (
                "table events_2024".to_string(),
                "partition of \"events\" FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') in the first schema, partition of \"events\" FOR VALUES IN ('2024-01-01') in the second schema".to_string()
            ),
        ]
    );
}

#[test]
fn differences_say_what_differs() {
    let mut a = Schema::default();
    let mut n = col("n", "integer");
    n.default = Some("1".into());
    a.tables.insert("t".into(), table(vec![n.clone()]));
    let body = |x: &str| {
        Function {
        def: format!(
            "CREATE OR REPLACE FUNCTION f()\n RETURNS integer\n LANGUAGE sql\nAS $function$ SELECT {x} + (SELECT count(*) FROM @tenant@.a_rather_long_table_name_to_push_the_difference_far_along) $function$\n"
        ),
        kind: "FUNCTION".into(),
    }
    };
    a.functions.insert("f()".into(), body("1"));
    let mut b = a.clone();
    let t = b.tables.get_mut("t").unwrap();
    t.columns[0].ty = "bigint".into();
    t.columns[0].not_null = true;
    t.columns[0].default = None;
    t.indexes
        .insert("t_n".into(), "CREATE INDEX t_n ON t USING btree (n)".into());
    b.functions.insert("f()".into(), body("2"));
    assert_eq!(
        differences(&a, &b),
        vec![
            ("table t".to_string(), "column n: type integer in the first schema, bigint in the second schema".to_string()),
            ("table t".to_string(), "column n: default 1 in the first schema, none in the second schema".to_string()),
            ("table t".to_string(), "column n: nullable in the first schema, NOT NULL in the second schema".to_string()),
            ("table t".to_string(), "index t_n: only in the second schema (CREATE INDEX t_n ON t USING btree (n))".to_string()),
            ("function f()".to_string(), "definition differs at character 82: \"…UAGE sql AS $function$ SELECT 1 + (SELECT count(*) FROM @tenant@.a_rather_long_table_name_…\" in the first schema, \"…UAGE sql AS $function$ SELECT 2 + (SELECT count(*) FROM @tenant@.a_rather_long_table_name_…\" in the second schema".to_string()),
        ]
    );
}

#[test]
fn the_template_name_is_never_in_generated_ddl() {
    let mut tpl = events();
    tpl.functions.insert(
        "f()".into(),
        Function {
            def: "CREATE OR REPLACE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $function$ BEGIN RETURN '\"tpl\"' || (SELECT count(*) FROM \"tpl\".events); END $function$".into(),
            kind: "FUNCTION".into(),
        },
    );
    tpl.tables.get_mut("events").unwrap().columns[0].default = Some("'\"tpl\"'::text".into());
    let raw = diff(&Schema::default(), &tpl, &TenantColumns::new());
    assert!(names_schema(&raw, "tpl").is_some());
    tpl.tenantize("tpl");
    let ddl = diff(&Schema::default(), &tpl, &TenantColumns::new());
    assert_eq!(names_schema(&ddl, "tpl"), None, "{ddl:#?}");
    assert!(
        ddl.iter()
            .any(|s| s.contains("RETURN '@tenant@' || (SELECT count(*) FROM @tenant@.events)")),
        "{ddl:#?}"
    );
    // A scratch build of the same migrations describes alike once tenantized.
    let mut scratch = tpl.clone();
    scratch.functions.get_mut("f()").unwrap().def = tpl.functions["f()"].def.clone();
    assert!(diff(&scratch, &tpl, &TenantColumns::new()).is_empty());
}

/// Building from nothing: own keys and valid foreign keys go into CREATE TABLE, referenced
/// tables first; a cycle's closing key, a NOT VALID check, a key whose target has no inline key
/// and everything without `foreign_keys` keep their ALTER TABLE.
#[test]
fn building_from_nothing_puts_keys_into_create_table() {
    let mut s = Schema::default();
    let mut a = table(vec![col("id", "bigint"), col("b_id", "bigint")]);
    a.constraints.insert(
        "a_pkey".into(),
        constraint(ConstraintKind::Primary, "PRIMARY KEY (id)", &["id"]),
    );
    a.constraints.insert(
        "a_b_fkey".into(),
        foreign_key(
            "FOREIGN KEY (b_id) REFERENCES b(id)",
            &["b_id"],
            "b",
            &["id"],
        ),
    );
    let mut b = table(vec![
        col("id", "bigint"),
        col("a_id", "bigint"),
        col("n", "int"),
    ]);
    b.constraints.insert(
        "b_pkey".into(),
        constraint(ConstraintKind::Primary, "PRIMARY KEY (id)", &["id"]),
    );
    b.constraints.insert(
        "b_a_fkey".into(),
        foreign_key(
            "FOREIGN KEY (a_id) REFERENCES a(id)",
            &["a_id"],
            "a",
            &["id"],
        ),
    );
    b.constraints.insert(
        "b_n_check".into(),
        Constraint {
            validated: false,
            ..constraint(ConstraintKind::Check, "CHECK ((n > 0)) NOT VALID", &["n"])
        },
    );
    let mut c = table(vec![
        col("id", "bigint"),
        col("b_n", "int"),
        col("p", "bigint"),
    ]);
    c.constraints.insert(
        "c_b_fkey".into(),
        foreign_key("FOREIGN KEY (b_n) REFERENCES b(n)", &["b_n"], "b", &["n"]),
    );
    let mut to_plans = foreign_key(
        "FOREIGN KEY (p) REFERENCES public.plans(id)",
        &["p"],
        "plans",
        &["id"],
    );
    fk_mut(&mut to_plans).schema = Some("public".into());
    c.constraints.insert("c_p_fkey".into(), to_plans);
    s.tables.insert("a".into(), a);
    s.tables.insert("b".into(), b);
    s.tables.insert("c".into(), c);

    let (tables, rest) = build_phases(&s, true);
    // b first (a references it); b's key to a closes the cycle and stays an ALTER TABLE
    assert!(tables[0].starts_with("CREATE TABLE \"b\""), "{tables:?}");
    assert!(tables[0].contains("CONSTRAINT \"b_pkey\" PRIMARY KEY (id)"));
    assert!(!tables[0].contains("b_a_fkey") && !tables[0].contains("b_n_check"));
    assert!(tables[1].starts_with("CREATE TABLE \"a\""), "{tables:?}");
    assert!(tables[1].contains("CONSTRAINT \"a_b_fkey\" FOREIGN KEY (b_id) REFERENCES b(id)"));
    // c: the shared table's key inline, the key to b(n) (no key of b on n) not
    assert!(
        tables[2].contains("CONSTRAINT \"c_p_fkey\" FOREIGN KEY (p) REFERENCES public.plans(id)")
    );
    assert!(!tables[2].contains("c_b_fkey"));
    assert_eq!(
        rest,
        strings(&[
            "ALTER TABLE \"b\" ADD CONSTRAINT \"b_n_check\" CHECK ((n > 0)) NOT VALID",
            "ALTER TABLE \"b\" ADD CONSTRAINT \"b_a_fkey\" FOREIGN KEY (a_id) REFERENCES a(id)",
            "ALTER TABLE \"c\" ADD CONSTRAINT \"c_b_fkey\" FOREIGN KEY (b_n) REFERENCES b(n)",
        ])
    );

    // a deferrable key is no target for an inline foreign key (the hostile review's F2)
    let mut d = s.clone();
    d.tables
        .get_mut("b")
        .unwrap()
        .constraints
        .get_mut("b_pkey")
        .unwrap()
        .deferrable = true;
    let (tables, _) = build_phases(&d, true);
    assert!(tables.iter().all(|t| !t.contains("a_b_fkey")), "{tables:?}");

    // without foreign keys: names' order, every foreign key an ALTER TABLE
    let (tables, rest) = build_phases(&s, false);
    assert!(tables[0].starts_with("CREATE TABLE \"a\"") && tables[0].contains("\"a_pkey\""));
    assert_eq!(rest.iter().filter(|r| r.contains("FOREIGN KEY")).count(), 4);
}
