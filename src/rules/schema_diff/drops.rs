//! The first half of a diff: what goes, in reverse dependency order (views, triggers, functions,
//! foreign keys, other constraints, indexes, policies, columns, tables, sequences).

use super::model::ConstraintKind;
use super::{order_views, own_parent, Pair};
use crate::rules::names::quote_ident as q;

/// Views that go or change (also those over reshaped tables), dependents first.
pub(super) fn views(p: &Pair) -> Vec<String> {
    let changed: Vec<&String> = p.from.views.keys().filter(|v| p.view_changed(v)).collect();
    order_views(&p.from.views, &changed)
        .into_iter()
        .rev()
        .map(|v| {
            let kind = if p.from.views[v].materialized {
                "MATERIALIZED VIEW"
            } else {
                "VIEW"
            };
            format!("DROP {kind} IF EXISTS {}", q(v))
        })
        .collect()
}

/// Triggers that go or change on tables that stay (a dropped table takes its triggers along).
pub(super) fn triggers(p: &Pair) -> Vec<String> {
    let mut out = Vec::new();
    for (t, table) in &p.from.tables {
        for (name, def) in &table.triggers {
            let keep = p.new_table(t).and_then(|n| n.triggers.get(name)) == Some(def);
            if !keep && p.new_table(t).is_some() {
                out.push(format!("DROP TRIGGER IF EXISTS {} ON {}", q(name), q(t)));
            }
        }
    }
    out
}

/// Functions and procedures whose signature is gone.
pub(super) fn functions(p: &Pair) -> Vec<String> {
    p.from
        .functions
        .iter()
        .filter(|(f, _)| !p.to.functions.contains_key(*f))
        .map(|(f, def)| format!("DROP {} IF EXISTS {f}", def.kind))
        .collect()
}

/// Constraints that go or change: foreign keys first (they depend on the others' indexes).
pub(super) fn constraints(p: &Pair) -> Vec<String> {
    let mut out = Vec::new();
    for fk_pass in [true, false] {
        for (t, table) in &p.from.tables {
            for (name, c) in &table.constraints {
                if (c.kind == ConstraintKind::Foreign) != fk_pass {
                    continue;
                }
                let keep = p.constraint_unchanged(t, name);
                // A dropped table takes its own non-FK constraints with it.
                let goes_with_table = p.new_table(t).is_none() && !fk_pass;
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
    out
}

/// Per table that stays: indexes and policies that go or change, then columns that go (or are
/// generated differently: a generated column's expression cannot be altered, so it is dropped
/// and added again). A partition's columns belong to its parent: dropped there, they go from
/// every partition.
pub(super) fn table_parts(p: &Pair) -> Vec<String> {
    let mut out = Vec::new();
    for t in &p.kept_tables {
        let (a, b) = (&p.from.tables[*t], &p.to.tables[*t]);
        let parent = own_parent(p.from, a);
        for (name, def) in &a.indexes {
            if b.indexes.get(name) != Some(def) {
                out.push(format!("DROP INDEX IF EXISTS {}", q(name)));
            }
        }
        for (name, policy) in &a.policies {
            if b.policies.get(name) != Some(policy) {
                out.push(format!("DROP POLICY IF EXISTS {} ON {}", q(name), q(t)));
            }
        }
        for c in &a.columns {
            if parent.is_some_and(|pt| pt.column(&c.name).is_some()) {
                continue;
            }
            let gone = match b.column(&c.name) {
                None => true,
                Some(n) => n.generated != c.generated,
            };
            if gone {
                out.push(format!("ALTER TABLE {} DROP COLUMN {}", q(t), q(&c.name)));
            }
        }
    }
    out
}

/// Tables that go, in one statement (so foreign keys among them need no order).
pub(super) fn tables(p: &Pair) -> Vec<String> {
    let dropped: Vec<String> = p
        .from
        .tables
        .keys()
        .filter(|t| p.new_table(t).is_none())
        .map(|t| q(t))
        .collect();
    if dropped.is_empty() {
        return Vec::new();
    }
    vec![format!("DROP TABLE {}", dropped.join(", "))]
}

/// Sequences that go.
pub(super) fn sequences(p: &Pair) -> Vec<String> {
    p.from
        .sequences
        .keys()
        .filter(|s| !p.to.sequences.contains_key(*s))
        .map(|s| format!("DROP SEQUENCE IF EXISTS {}", q(s)))
        .collect()
}
