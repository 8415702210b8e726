use super::*;

fn col(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        ty: ty.into(),
        not_null: false,
        default: None,
        generated: None,
        identity: None,
        collation: None,
    }
}

fn table(cols: Vec<Column>) -> Table {
    Table {
        columns: cols,
        ..Default::default()
    }
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
        vec![("table users".to_string(), "differs".to_string())]
    );
}

#[test]
fn creates_come_in_dependency_order_and_drops_in_reverse() {
    let a = Schema::default();
    let mut b = Schema::default();
    let mut parent = table(vec![col("id", "integer")]);
    parent.constraints.insert(
        "parent_pkey".into(),
        Constraint {
            kind: "p".into(),
            def: "PRIMARY KEY (id)".into(),
        },
    );
    let mut child = table(vec![col("parent_id", "integer")]);
    child.constraints.insert(
        "child_parent_fkey".into(),
        Constraint {
            kind: "f".into(),
            def: "FOREIGN KEY (parent_id) REFERENCES parent(id)".into(),
        },
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
    tasks.constraints.insert(
        "tasks_project_fkey".into(),
        Constraint {
            kind: "f".into(),
            def: "FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE".into(),
        },
    );
    b.tables.insert("tasks".into(), tasks);
    let tenants: TenantColumns = [
        ("projects".to_string(), "tenant_id".to_string()),
        ("tasks".to_string(), "tenant_id".to_string()),
    ]
    .into();
    let ddl = diff(&Schema::default(), &b, &tenants);
    assert!(
        ddl.contains(&"ALTER TABLE \"projects\" ADD UNIQUE (\"tenant_id\", id)".to_string()),
        "{ddl:#?}"
    );
    assert!(
        ddl.contains(&"ALTER TABLE \"tasks\" ADD CONSTRAINT \"tasks_project_fkey\" FOREIGN KEY (\"tenant_id\", project_id) REFERENCES projects(\"tenant_id\", id) ON DELETE CASCADE".to_string()),
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
