//! The second half of a diff: what comes or changes, in dependency order (sequences, tables,
//! columns and column changes, sequence ownership, constraints and indexes, foreign keys,
//! row-level security and policies, functions, triggers, views).

use std::collections::BTreeSet;

use super::build::Inline;
use super::model::{
    Column, Constraint, ConstraintKind, ForeignKey, Policy, Sequence, Table, TenantColumns,
};
use super::{order_views, own_parent, parents_first, Pair};
use crate::rules::names::quote_ident as q;

pub(super) fn column_sql(c: &Column) -> String {
    let mut s = format!("{} {}", q(&c.name), c.ty);
    if let Some(coll) = &c.collation {
        s.push_str(&format!(" COLLATE {coll}"));
    }
    if let Some(g) = &c.generated {
        s.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
    }
    if let Some(i) = &c.identity {
        s.push_str(&format!(
            " GENERATED {i} AS IDENTITY{}",
            identity_options(c)
        ));
    } else if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    s
}

/// ` (INCREMENT BY 5 …)` for an identity column with options, empty otherwise.
fn identity_options(c: &Column) -> String {
    c.identity_options
        .as_ref()
        .map(|o| format!(" ({o})"))
        .unwrap_or_default()
}

/// The clauses of an identity options text, by option: (`INCREMENT`, `INCREMENT BY 5`), …
fn identity_clauses(options: Option<&str>) -> Vec<(&'static str, String)> {
    let words: Vec<&str> = options.unwrap_or("").split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let (key, len) = match words[i] {
            "INCREMENT" => ("INCREMENT", 3),
            "MINVALUE" => ("MINVALUE", 2),
            "MAXVALUE" => ("MAXVALUE", 2),
            "START" => ("START", 3),
            "CACHE" => ("CACHE", 2),
            "CYCLE" => ("CYCLE", 1),
            _ => {
                i += 1;
                continue;
            }
        };
        let end = (i + len).min(words.len());
        out.push((key, words[i..end].join(" ")));
        i = end;
    }
    out
}

/// `SET …` clauses that take an identity column's sequence from `old`'s options to `new`'s:
/// each option of `new`, and the default back for one only `old` sets (START WITH's default is
/// the new minimum, or maximum for a descending sequence).
fn identity_option_changes(old: Option<&str>, new: Option<&str>) -> Option<String> {
    let (o, n) = (identity_clauses(old), identity_clauses(new));
    let mut sets: Vec<String> = n.iter().map(|(_, c)| format!("SET {c}")).collect();
    for (key, _) in &o {
        if n.iter().any(|(k, _)| k == key) {
            continue;
        }
        match *key {
            "INCREMENT" => sets.push("SET INCREMENT BY 1".into()),
            "MINVALUE" => sets.push("SET NO MINVALUE".into()),
            "MAXVALUE" => sets.push("SET NO MAXVALUE".into()),
            "CACHE" => sets.push("SET CACHE 1".into()),
            "CYCLE" => sets.push("SET NO CYCLE".into()),
            "START" => {
                let value = |k: &str| {
                    n.iter()
                        .find(|(key, _)| *key == k)
                        .and_then(|(_, c)| c.split_whitespace().last())
                        .map(str::to_string)
                };
                let descending = value("INCREMENT").is_some_and(|i| i.starts_with('-'));
                let start = if descending {
                    value("MAXVALUE").unwrap_or_else(|| "-1".into())
                } else {
                    value("MINVALUE").unwrap_or_else(|| "1".into())
                };
                sets.push(format!("SET START WITH {start}"));
            }
            _ => {}
        }
    }
    (!sets.is_empty()).then(|| sets.join(" "))
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
    format!(
        "CREATE POLICY {} ON {} {}",
        q(name),
        q(table),
        policy_clauses(p)
    )
}

/// A policy's `AS … FOR … USING (…) WITH CHECK (…)`: what `CREATE POLICY` says after the table,
/// and what `compare_schemas` compares.
pub(super) fn policy_clauses(p: &Policy) -> String {
    let mut s = format!(
        "AS {} FOR {}",
        if p.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        p.cmd
    );
    if !p.roles.is_empty() {
        s.push_str(&format!(" TO {}", p.roles.join(", ")));
    }
    if let Some(u) = &p.using {
        s.push_str(&format!(" USING ({u})"));
    }
    if let Some(c) = &p.check {
        s.push_str(&format!(" WITH CHECK ({c})"));
    }
    s
}

/// A foreign key made composite, and what its target needs.
struct CompositeFk {
    /// `FOREIGN KEY (tenant, a…) REFERENCES t(tenant, b…) …`, the original clauses kept.
    def: String,
    /// The referenced table (one of the described schema's own).
    target: String,
    /// The referenced key, tenant column first, quoted: the unique constraint the target needs.
    key: Vec<String>,
}

/// A foreign key from an attribute table (tenant column `from_tenant`) to another attribute table
/// becomes composite, `FOREIGN KEY (tenant, a) REFERENCES t(tenant, b) …`, unless it already
/// leads with the tenant column. Built from the structured fields alone, every name quoted, so
/// no column or table name can change its meaning.
fn composite_fk(c: &Constraint, from_tenant: &str, tenants: &TenantColumns) -> Option<CompositeFk> {
    let fk = c.foreign_key.as_ref()?;
    // Attribute tables are the described schema's own; a shared schema's table is none of them.
    if fk.schema.is_some() {
        return None;
    }
    let to_tenant = tenants.get(&fk.table)?;
    if c.columns.first().map(String::as_str) == Some(from_tenant) {
        return None;
    }
    let quoted = |tenant: &str, cols: &[String]| -> Vec<String> {
        std::iter::once(tenant)
            .chain(cols.iter().map(String::as_str))
            .map(q)
            .collect()
    };
    let key = quoted(to_tenant, &fk.columns);
    let def = format!(
        "FOREIGN KEY ({}) REFERENCES {}({}){}",
        quoted(from_tenant, &c.columns).join(", "),
        q(&fk.table),
        key.join(", "),
        fk_clauses(c, fk)
    );
    Some(CompositeFk {
        def,
        target: fk.table.clone(),
        key,
    })
}

/// What follows a foreign key's referenced columns, in the order `pg_get_constraintdef` prints
/// it: MATCH, ON UPDATE, ON DELETE (with its columns), DEFERRABLE, INITIALLY DEFERRED, NOT VALID.
fn fk_clauses(c: &Constraint, fk: &ForeignKey) -> String {
    let mut s = fk.match_type.clause().to_string();
    if let Some(action) = fk.on_update.sql() {
        s.push_str(&format!(" ON UPDATE {action}"));
    }
    if let Some(action) = fk.on_delete.sql() {
        s.push_str(&format!(" ON DELETE {action}"));
        if let Some(cols) = &fk.on_delete_columns {
            let cols: Vec<String> = cols.iter().map(|n| q(n)).collect();
            s.push_str(&format!(" ({})", cols.join(", ")));
        }
    }
    if c.deferrable {
        s.push_str(" DEFERRABLE");
    }
    if c.initially_deferred {
        s.push_str(" INITIALLY DEFERRED");
    }
    if !c.validated {
        s.push_str(" NOT VALID");
    }
    s
}

/// Sequences that come (CREATE) or change (ALTER).
pub(super) fn sequences(p: &Pair) -> Vec<String> {
    let mut out = Vec::new();
    for (name, s) in &p.to.sequences {
        match p.from.sequences.get(name) {
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
    out
}

/// Tables that come (CREATE TABLE with their columns, or `PARTITION OF` their parent, each
/// partitioned table before its partitions); for tables that stay, the columns that come and the
/// changes of the others. With `inline` (building from nothing: [`super::build`]), in its order
/// and with its constraint clauses after the columns.
pub(super) fn tables_and_columns(p: &Pair, inline: Option<&Inline>) -> Vec<String> {
    let mut out = Vec::new();
    let order: Vec<&String> = match inline {
        Some(i) => i.order.iter().collect(),
        None => parents_first(p.to),
    };
    for t in order {
        let table = &p.to.tables[t];
        let key = table
            .partition_by
            .as_ref()
            .map(|k| format!(" PARTITION BY {k}"))
            .unwrap_or_default();
        match (p.old(t), &table.partition_of) {
            (None, Some(of)) => {
                out.push(format!(
                    "CREATE TABLE {} PARTITION OF {} {}{key}",
                    q(t),
                    of.parent_sql(),
                    of.bound
                ));
                // What the partition has of its own beyond what it takes from its parent.
                if let Some(parent) = own_parent(p.to, table) {
                    let inherited = Table {
                        columns: parent.columns.clone(),
                        ..Default::default()
                    };
                    out.extend(columns(t, &inherited, table));
                }
            }
            (None, None) => {
                let cols: Vec<String> = table
                    .columns
                    .iter()
                    .map(column_sql)
                    .chain(
                        inline
                            .and_then(|i| i.clauses.get(t.as_str()))
                            .into_iter()
                            .flatten()
                            .cloned(),
                    )
                    .map(|c| format!("    {c}"))
                    .collect();
                out.push(format!(
                    "CREATE TABLE {} (\n{}\n){key}",
                    q(t),
                    cols.join(",\n")
                ));
            }
            (Some(old), _) => match (own_parent(p.from, old), own_parent(p.to, table)) {
                (Some(old_parent), Some(new_parent)) => out.extend(columns(
                    t,
                    &after_parent(old, old_parent, new_parent),
                    table,
                )),
                _ => out.extend(columns(t, old, table)),
            },
        }
    }
    out
}

/// A partition's columns once its parent's column changes ran: adding, dropping, retyping a
/// column and changing its default or NOT NULL on a partitioned table do the same on every
/// partition.
fn after_parent(old: &Table, old_parent: &Table, new_parent: &Table) -> Table {
    let columns = new_parent
        .columns
        .iter()
        .map(
            |n| match (old_parent.column(&n.name), old.column(&n.name)) {
                (Some(op), Some(o)) if op.generated == n.generated => {
                    let mut c = o.clone();
                    if op.ty != n.ty || op.collation != n.collation {
                        c.ty = n.ty.clone();
                        c.collation = n.collation.clone();
                    }
                    if op.default != n.default {
                        c.default = n.default.clone();
                    }
                    if op.not_null != n.not_null {
                        c.not_null = n.not_null;
                    }
                    if op.identity != n.identity {
                        c.identity = n.identity.clone();
                        c.identity_options = n.identity_options.clone();
                    }
                    c
                }
                _ => n.clone(),
            },
        )
        .collect();
    Table {
        columns,
        ..Default::default()
    }
}

/// One table's columns: added (also those generated differently, dropped before), then type,
/// identity, default and NOT NULL changes.
fn columns(t: &str, old: &Table, table: &Table) -> Vec<String> {
    let mut out = Vec::new();
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
                out.push(alter(format!(
                    "ADD GENERATED {i} AS IDENTITY{}",
                    identity_options(c)
                )));
            }
        } else if o.identity_options != c.identity_options && c.identity.is_some() {
            if let Some(sets) = identity_option_changes(
                o.identity_options.as_deref(),
                c.identity_options.as_deref(),
            ) {
                out.push(alter(sets));
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
    out
}

/// `OWNED BY` of sequences that come or change owner (once the owning column exists).
pub(super) fn sequence_ownership(p: &Pair) -> Vec<String> {
    let mut out = Vec::new();
    for (name, s) in &p.to.sequences {
        let old_owner = p.from.sequences.get(name).and_then(|o| o.owned_by.clone());
        if s.owned_by != old_owner || !p.from.sequences.contains_key(name) {
            if let Some(owner) = &s.owned_by {
                out.push(format!("ALTER SEQUENCE {} OWNED BY {owner}", q(name)));
            }
        }
    }
    out
}

/// Per table, constraints (other than foreign keys) and indexes that come or change; then all
/// foreign keys that come or change, after every key they may reference. A foreign key between
/// two attribute tables comes out composite, preceded by the unique constraint its target needs.
pub(super) fn constraints_and_indexes(p: &Pair, tenants: &TenantColumns) -> Vec<String> {
    let mut out = Vec::new();
    let mut unique_added: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
    let mut fks: Vec<String> = Vec::new();
    for (t, table) in &p.to.tables {
        let old = p.old(t);
        for (name, c) in &table.constraints {
            if p.constraint_unchanged(t, name) {
                continue;
            }
            if c.kind == ConstraintKind::Foreign {
                fks.extend(foreign_key(t, name, c, tenants, &mut unique_added));
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
    out
}

/// One foreign key's statements: the unique constraint a composite key's target needs (once per
/// target and key), then the key.
fn foreign_key(
    t: &str,
    name: &str,
    c: &Constraint,
    tenants: &TenantColumns,
    unique_added: &mut BTreeSet<(String, Vec<String>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    let composite = tenants
        .get(t)
        .and_then(|from_tenant| composite_fk(c, from_tenant, tenants));
    let def = match composite {
        Some(CompositeFk { def, target, key }) => {
            if unique_added.insert((target.clone(), key.clone())) {
                out.push(format!(
                    "ALTER TABLE {} ADD UNIQUE ({})",
                    q(&target),
                    key.join(", ")
                ));
            }
            def
        }
        None => c.def.clone(),
    };
    out.push(format!(
        "ALTER TABLE {} ADD CONSTRAINT {} {def}",
        q(t),
        q(name)
    ));
    out
}

/// Row-level security flags that change and policies that come or change, per table.
pub(super) fn row_level_security(p: &Pair) -> Vec<String> {
    let mut out = Vec::new();
    for (t, table) in &p.to.tables {
        let old = p.old(t).cloned().unwrap_or_default();
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
        for (name, policy) in &table.policies {
            if old.policies.get(name) != Some(policy) {
                out.push(policy_sql(t, name, policy));
            }
        }
    }
    out
}

/// Functions and procedures that come or change (their definitions are CREATE OR REPLACE).
pub(super) fn functions(p: &Pair) -> Vec<String> {
    p.to.functions
        .iter()
        .filter(|(name, f)| p.from.functions.get(*name) != Some(*f))
        .map(|(_, f)| f.def.trim_end().to_string())
        .collect()
}

/// Triggers that come or change (after the functions they run).
pub(super) fn triggers(p: &Pair) -> Vec<String> {
    let mut out = Vec::new();
    for (t, table) in &p.to.tables {
        for (name, def) in &table.triggers {
            if p.old(t).and_then(|o| o.triggers.get(name)) != Some(def) {
                out.push(def.clone());
            }
        }
    }
    out
}

/// Views that come or change (also those over reshaped tables), each after the views it reads.
pub(super) fn views(p: &Pair) -> Vec<String> {
    let wanted: Vec<&String> =
        p.to.views
            .keys()
            .filter(|v| !p.from.views.contains_key(*v) || p.view_changed(v))
            .collect();
    order_views(&p.to.views, &wanted)
        .into_iter()
        .map(|v| {
            let view = &p.to.views[v];
            let kind = if view.materialized {
                "MATERIALIZED VIEW"
            } else {
                "VIEW"
            };
            format!(
                "CREATE {kind} {} AS\n{}",
                q(v),
                view.def.trim().trim_end_matches(';')
            )
        })
        .collect()
}
