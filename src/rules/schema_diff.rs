//! The migration generator's pure half: two schema descriptions (as `tenancy.describe_schema`
//! produces them) in, the ordered DDL that turns the first into the second out.
//!
//! Pure: no pgrx. Order: drop what goes (views, functions, foreign keys, other constraints,
//! indexes, policies, columns, tables, sequences), then create (sequences, tables, columns,
//! column changes, sequence ownership, constraints, indexes, foreign keys, row-level security,
//! functions, views in dependency order). Names are always quoted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::rules::names::quote_ident;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Schema {
    #[serde(default)]
    pub sequences: BTreeMap<String, Sequence>,
    #[serde(default)]
    pub tables: BTreeMap<String, Table>,
    #[serde(default)]
    pub views: BTreeMap<String, View>,
    #[serde(default)]
    pub functions: BTreeMap<String, Function>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Sequence {
    #[serde(rename = "type")]
    pub ty: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    pub owned_by: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Table {
    #[serde(default)]
    pub columns: Vec<Column>,
    #[serde(default)]
    pub constraints: BTreeMap<String, Constraint>,
    #[serde(default)]
    pub indexes: BTreeMap<String, String>,
    #[serde(default)]
    pub rls: bool,
    #[serde(default)]
    pub force_rls: bool,
    #[serde(default)]
    pub policies: BTreeMap<String, Policy>,
    #[serde(default)]
    pub triggers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub not_null: bool,
    pub default: Option<String>,
    pub generated: Option<String>,
    pub identity: Option<String>,
    pub collation: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Constraint {
    #[serde(rename = "type")]
    pub kind: String,
    pub def: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Policy {
    pub cmd: String,
    pub permissive: bool,
    pub using: Option<String>,
    pub check: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct View {
    pub def: String,
    pub materialized: bool,
    #[serde(default)]
    pub depends_on: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Function {
    pub def: String,
    pub kind: String,
}

impl Table {
    fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Attribute-tenancy facts the generator needs: template table → tenant column.
pub type TenantColumns = BTreeMap<String, String>;

fn column_sql(c: &Column) -> String {
    let mut s = format!("{} {}", quote_ident(&c.name), c.ty);
    if let Some(coll) = &c.collation {
        s.push_str(&format!(" COLLATE {coll}"));
    }
    if let Some(g) = &c.generated {
        s.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
    }
    if let Some(i) = &c.identity {
        s.push_str(&format!(" GENERATED {i} AS IDENTITY"));
    } else if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    s
}

fn sequence_options(s: &Sequence) -> String {
    format!(
        "AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}",
        s.ty,
        s.increment,
        s.min,
        s.max,
        s.start,
        s.cache,
        if s.cycle { "CYCLE" } else { "NO CYCLE" }
    )
}

fn policy_sql(table: &str, name: &str, p: &Policy) -> String {
    let mut s = format!(
        "CREATE POLICY {} ON {} AS {} FOR {}",
        quote_ident(name),
        quote_ident(table),
        if p.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        p.cmd
    );
    if let Some(u) = &p.using {
        s.push_str(&format!(" USING ({u})"));
    }
    if let Some(c) = &p.check {
        s.push_str(&format!(" WITH CHECK ({c})"));
    }
    s
}

/// `FOREIGN KEY (a) REFERENCES t(b) …` between two attribute tables becomes
/// `FOREIGN KEY (tenant, a) REFERENCES t(tenant, b) …`, unless it already leads with the tenant
/// columns. Returns the target table and its key when rewritten, for the unique constraint.
fn composite_fk(
    def: &str,
    from_tenant: &str,
    tenants: &TenantColumns,
) -> Option<(String, String, Vec<String>)> {
    let rest = def.strip_prefix("FOREIGN KEY (")?;
    let close = rest.find(')')?;
    let from_cols = &rest[..close];
    let rest = rest[close + 1..].strip_prefix(" REFERENCES ")?;
    let open = rest.find('(')?;
    let target = &rest[..open];
    let target_name = target.trim_matches('"').replace("\"\"", "\"");
    let to_tenant = tenants.get(&target_name)?;
    let close = rest[open..].find(')')? + open;
    let to_cols = &rest[open + 1..close];
    let tail = &rest[close + 1..];
    let (ft, tt) = (quote_ident(from_tenant), quote_ident(to_tenant));
    if from_cols.split(", ").next() == Some(ft.as_str())
        || from_cols.split(", ").next() == Some(from_tenant)
    {
        return None;
    }
    let new_to: Vec<String> = std::iter::once(tt.clone())
        .chain(to_cols.split(", ").map(str::to_string))
        .collect();
    let def = format!(
        "FOREIGN KEY ({ft}, {from_cols}) REFERENCES {target}({}){tail}",
        new_to.join(", ")
    );
    Some((def, target_name, new_to))
}

/// The DDL turning `from` into `to`, as statements without trailing semicolons.
pub fn diff(from: &Schema, to: &Schema, tenants: &TenantColumns) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let q = |n: &str| quote_ident(n);
    let kept_tables: Vec<&String> = to
        .tables
        .keys()
        .filter(|t| from.tables.contains_key(*t))
        .collect();

    // Tables whose columns change type or disappear: views over them are rebuilt.
    let reshaped: BTreeSet<&String> = kept_tables
        .iter()
        .filter(|t| {
            let (a, b) = (&from.tables[**t], &to.tables[**t]);
            a.columns
                .iter()
                .any(|c| b.column(&c.name).is_none_or(|n| n.ty != c.ty))
        })
        .copied()
        .collect();
    let view_changed = |name: &String| -> bool {
        match (from.views.get(name), to.views.get(name)) {
            (Some(a), Some(b)) => a != b || a.depends_on.iter().any(|d| reshaped.contains(d)),
            _ => true,
        }
    };

    // --- drops
    let drop_views: Vec<&String> = from.views.keys().filter(|v| view_changed(v)).collect();
    for v in order_views(&from.views, &drop_views).into_iter().rev() {
        let kind = if from.views[v].materialized {
            "MATERIALIZED VIEW"
        } else {
            "VIEW"
        };
        out.push(format!("DROP {kind} IF EXISTS {}", q(v)));
    }
    for (t, table) in &from.tables {
        for (name, def) in &table.triggers {
            let keep = to.tables.get(t).and_then(|n| n.triggers.get(name)) == Some(def);
            if !keep && to.tables.contains_key(t) {
                out.push(format!("DROP TRIGGER IF EXISTS {} ON {}", q(name), q(t)));
            }
        }
    }
    for f in from
        .functions
        .keys()
        .filter(|f| !to.functions.contains_key(*f))
    {
        out.push(format!("DROP {} IF EXISTS {f}", from.functions[f].kind));
    }
    // Constraints that go or change: foreign keys first (they depend on the others' indexes).
    for fk_pass in [true, false] {
        for (t, table) in &from.tables {
            for (name, c) in &table.constraints {
                if (c.kind == "f") != fk_pass {
                    continue;
                }
                let keep = to.tables.get(t).and_then(|n| n.constraints.get(name)) == Some(c);
                // A dropped table takes its own non-FK constraints with it.
                let goes_with_table = !to.tables.contains_key(t) && !fk_pass;
                if !keep && !goes_with_table {
                    out.push(format!(
                        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                        q(t),
                        q(name)
                    ));
                }
            }
        }
    }
    for t in &kept_tables {
        let (a, b) = (&from.tables[*t], &to.tables[*t]);
        for (name, def) in &a.indexes {
            if b.indexes.get(name) != Some(def) {
                out.push(format!("DROP INDEX IF EXISTS {}", q(name)));
            }
        }
        for (name, p) in &a.policies {
            if b.policies.get(name) != Some(p) {
                out.push(format!("DROP POLICY IF EXISTS {} ON {}", q(name), q(t)));
            }
        }
        for c in &a.columns {
            let gone = match b.column(&c.name) {
                None => true,
                // A generated column's expression cannot be altered: drop and add it.
                Some(n) => n.generated != c.generated,
            };
            if gone {
                out.push(format!("ALTER TABLE {} DROP COLUMN {}", q(t), q(&c.name)));
            }
        }
    }
    let dropped: Vec<String> = from
        .tables
        .keys()
        .filter(|t| !to.tables.contains_key(*t))
        .map(|t| q(t))
        .collect();
    if !dropped.is_empty() {
        out.push(format!("DROP TABLE {}", dropped.join(", ")));
    }
    for s in from
        .sequences
        .keys()
        .filter(|s| !to.sequences.contains_key(*s))
    {
        out.push(format!("DROP SEQUENCE IF EXISTS {}", q(s)));
    }

    // --- creates
    for (name, s) in &to.sequences {
        match from.sequences.get(name) {
            None => out.push(format!(
                "CREATE SEQUENCE {} {}",
                q(name),
                sequence_options(s)
            )),
            Some(old) if old.ty != s.ty || sequence_options(old) != sequence_options(s) => out
                .push(format!(
                    "ALTER SEQUENCE {} {}",
                    q(name),
                    sequence_options(s)
                )),
            _ => {}
        }
    }
    for (t, table) in &to.tables {
        let Some(old) = from.tables.get(t) else {
            let cols: Vec<String> = table
                .columns
                .iter()
                .map(|c| format!("    {}", column_sql(c)))
                .collect();
            out.push(format!("CREATE TABLE {} (\n{}\n)", q(t), cols.join(",\n")));
            continue;
        };
        for c in &table.columns {
            let Some(o) = old.column(&c.name).filter(|o| o.generated == c.generated) else {
                out.push(format!("ALTER TABLE {} ADD COLUMN {}", q(t), column_sql(c)));
                continue;
            };
            let alter =
                |what: String| format!("ALTER TABLE {} ALTER COLUMN {} {what}", q(t), q(&c.name));
            if o.ty != c.ty || o.collation != c.collation {
                let coll = c
                    .collation
                    .as_ref()
                    .map(|x| format!(" COLLATE {x}"))
                    .unwrap_or_default();
                out.push(alter(format!(
                    "TYPE {}{coll} USING {}::{}",
                    c.ty,
                    q(&c.name),
                    c.ty
                )));
            }
            if o.identity != c.identity {
                if o.identity.is_some() {
                    out.push(alter("DROP IDENTITY IF EXISTS".into()));
                }
                if let Some(i) = &c.identity {
                    out.push(alter(format!("ADD GENERATED {i} AS IDENTITY")));
                }
            }
            if o.default != c.default && c.identity.is_none() {
                out.push(alter(match &c.default {
                    Some(d) => format!("SET DEFAULT {d}"),
                    None => "DROP DEFAULT".into(),
                }));
            }
            if o.not_null != c.not_null {
                out.push(alter(if c.not_null {
                    "SET NOT NULL".into()
                } else {
                    "DROP NOT NULL".into()
                }));
            }
        }
    }
    for (name, s) in &to.sequences {
        let old_owner = from.sequences.get(name).and_then(|o| o.owned_by.clone());
        if s.owned_by != old_owner || !from.sequences.contains_key(name) {
            if let Some(owner) = &s.owned_by {
                out.push(format!("ALTER SEQUENCE {} OWNED BY {owner}", q(name)));
            }
        }
    }
    let mut unique_added: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
    let mut fks: Vec<String> = Vec::new();
    for (t, table) in &to.tables {
        let old = from.tables.get(t);
        for (name, c) in &table.constraints {
            if old.and_then(|o| o.constraints.get(name)) == Some(c) {
                continue;
            }
            if c.kind == "f" {
                let mut def = c.def.clone();
                if let Some(ft) = tenants.get(t) {
                    if let Some((d, target, key)) = composite_fk(&c.def, ft, tenants) {
                        def = d;
                        if unique_added.insert((target.clone(), key.clone())) {
                            fks.push(format!(
                                "ALTER TABLE {} ADD UNIQUE ({})",
                                q(&target),
                                key.join(", ")
                            ));
                        }
                    }
                }
                fks.push(format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {def}",
                    q(t),
                    q(name)
                ));
            } else {
                out.push(format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {}",
                    q(t),
                    q(name),
                    c.def
                ));
            }
        }
        for (name, def) in &table.indexes {
            if old.and_then(|o| o.indexes.get(name)) != Some(def) {
                out.push(def.clone());
            }
        }
    }
    out.extend(fks);
    for (t, table) in &to.tables {
        let old = from.tables.get(t).cloned().unwrap_or_default();
        if old.rls != table.rls {
            out.push(format!(
                "ALTER TABLE {} {} ROW LEVEL SECURITY",
                q(t),
                if table.rls { "ENABLE" } else { "DISABLE" }
            ));
        }
        if old.force_rls != table.force_rls {
            out.push(format!(
                "ALTER TABLE {} {} ROW LEVEL SECURITY",
                q(t),
                if table.force_rls { "FORCE" } else { "NO FORCE" }
            ));
        }
        for (name, p) in &table.policies {
            if old.policies.get(name) != Some(p) {
                out.push(policy_sql(t, name, p));
            }
        }
    }
    for (name, f) in &to.functions {
        if from.functions.get(name) != Some(f) {
            out.push(f.def.trim_end().to_string());
        }
    }
    for (t, table) in &to.tables {
        for (name, def) in &table.triggers {
            if from.tables.get(t).and_then(|o| o.triggers.get(name)) != Some(def) {
                out.push(def.clone());
            }
        }
    }
    let create_views: Vec<&String> = to
        .views
        .keys()
        .filter(|v| !from.views.contains_key(*v) || view_changed(v))
        .collect();
    for v in order_views(&to.views, &create_views) {
        let view = &to.views[v];
        let kind = if view.materialized {
            "MATERIALIZED VIEW"
        } else {
            "VIEW"
        };
        out.push(format!(
            "CREATE {kind} {} AS\n{}",
            q(v),
            view.def.trim().trim_end_matches(';')
        ));
    }
    out
}

/// `names` ordered so that each view comes after the views it depends on.
fn order_views<'a>(all: &'a BTreeMap<String, View>, names: &[&'a String]) -> Vec<&'a String> {
    let wanted: BTreeSet<&String> = names.iter().copied().collect();
    let mut done: BTreeSet<&String> = BTreeSet::new();
    let mut out = Vec::new();
    fn visit<'a>(
        v: &'a String,
        all: &'a BTreeMap<String, View>,
        wanted: &BTreeSet<&'a String>,
        done: &mut BTreeSet<&'a String>,
        out: &mut Vec<&'a String>,
    ) {
        if !done.insert(v) {
            return;
        }
        if let Some(view) = all.get(v) {
            for d in &view.depends_on {
                if let Some((k, _)) = all.get_key_value(d) {
                    visit(k, all, wanted, done, out);
                }
            }
        }
        if wanted.contains(v) {
            out.push(v);
        }
    }
    for v in names {
        visit(v, all, &wanted, &mut done, &mut out);
    }
    out
}

/// A migration file from the statements.
pub fn render(statements: &[String], template: &str) -> String {
    if statements.is_empty() {
        return format!(
            "-- generated by tenancy.generate_migration('{}'): nothing to do\n",
            template.replace('\'', "''")
        );
    }
    let mut s = format!(
        "-- generated by tenancy.generate_migration: turns the current tenant migrations into schema {}\n",
        quote_ident(template)
    );
    for st in statements {
        s.push_str(st);
        s.push_str(";\n\n");
    }
    s.truncate(s.trim_end().len());
    s.push('\n');
    s
}

/// Object-level differences between two descriptions (column order ignored), for round-trip
/// checks and `tenancy.compare_schemas`.
pub fn differences(a: &Schema, b: &Schema) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut keys =
        |kind: &str, x: Vec<&String>, y: Vec<&String>, same: &dyn Fn(&String) -> bool| {
            let all: BTreeSet<&String> = x.iter().chain(y.iter()).copied().collect();
            for k in all {
                let (in_a, in_b) = (x.contains(&k), y.contains(&k));
                let what = match (in_a, in_b) {
                    (true, false) => "only in the first schema",
                    (false, true) => "only in the second schema",
                    _ if !same(k) => "differs",
                    _ => continue,
                };
                out.push((format!("{kind} {k}"), what.to_string()));
            }
        };
    keys(
        "sequence",
        a.sequences.keys().collect(),
        b.sequences.keys().collect(),
        &|k| a.sequences[k] == b.sequences[k],
    );
    keys(
        "table",
        a.tables.keys().collect(),
        b.tables.keys().collect(),
        &|k| {
            let (x, y) = (&a.tables[k], &b.tables[k]);
            let mut xc = x.columns.clone();
            let mut yc = y.columns.clone();
            xc.sort_by(|p, q| p.name.cmp(&q.name));
            yc.sort_by(|p, q| p.name.cmp(&q.name));
            xc == yc
                && x.constraints == y.constraints
                && x.indexes == y.indexes
                && x.rls == y.rls
                && x.force_rls == y.force_rls
                && x.policies == y.policies
                && x.triggers == y.triggers
        },
    );
    keys(
        "view",
        a.views.keys().collect(),
        b.views.keys().collect(),
        &|k| a.views[k] == b.views[k],
    );
    keys(
        "function",
        a.functions.keys().collect(),
        b.functions.keys().collect(),
        &|k| a.functions[k] == b.functions[k],
    );
    out
}

#[cfg(test)]
mod tests {
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
        assert!(plain
            .iter()
            .any(|s| s
                .ends_with("FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE")));
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
}
