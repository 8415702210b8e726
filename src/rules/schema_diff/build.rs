//! The DDL that builds a described schema in an empty one (a snapshot's squashed form,
//! src/rules/snapshot.rs): the `creates` of a diff from nothing, with what a new table can carry
//! put into its CREATE TABLE. Each constraint added by ALTER TABLE builds the table's relcache
//! entry again, and a foreign key added to an existing table runs a validating query; in CREATE
//! TABLE neither happens.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{ConstraintKind, Schema, Table, TenantColumns};
use super::{creates, parents_first, Pair};
use crate::rules::names::quote_ident;

/// What the new tables' CREATE TABLE statements carry beyond their columns, and their order.
pub(super) struct Inline {
    /// Per plain table: `CONSTRAINT name def` clauses, after its columns.
    pub clauses: BTreeMap<String, Vec<String>>,
    /// Every table, each after the tables its inlined foreign keys reference.
    pub order: Vec<String>,
}

/// A constraint as a CREATE TABLE clause.
fn clause(name: &str, def: &str) -> String {
    format!("CONSTRAINT {} {def}", quote_ident(name))
}

fn plain(t: &Table) -> bool {
    t.partition_by.is_none() && t.partition_of.is_none()
}

/// The DDL that builds `to` in an empty schema, in two phases (the squashed form puts rows
/// between them): sequences and tables with their columns and own constraints, then everything
/// else (the constraints left, indexes, row-level security, functions, triggers, views), in the
/// order `diff` uses. A plain table's valid keys, checks and exclusions go into its CREATE TABLE;
/// with `foreign_keys`, so do its valid foreign keys to a shared table, to itself, or to another
/// plain table's inlined key (tables are then created referenced first; a key closing a cycle
/// stays an ALTER TABLE). NOT VALID constraints (CREATE TABLE would mark them valid),
/// partitioned tables and partitions keep their ALTER TABLE. Callers whose phases put rows into
/// tables pass `foreign_keys` false: rows go in table by table.
pub fn build_phases(to: &Schema, foreign_keys: bool) -> (Vec<String>, Vec<String>) {
    let mut rest = to.clone();
    let inline = take_inline(&mut rest, foreign_keys);
    let empty = Schema::default();
    let p = Pair::new(&empty, &rest);
    let none = TenantColumns::new();
    (
        [
            creates::sequences(&p),
            creates::tables_and_columns(&p, Some(&inline)),
            creates::sequence_ownership(&p),
        ]
        .concat(),
        [
            creates::constraints_and_indexes(&p, &none),
            creates::row_level_security(&p),
            creates::functions(&p),
            creates::triggers(&p),
            creates::views(&p),
        ]
        .concat(),
    )
}

/// Moves the constraints that go into CREATE TABLE out of `s` (see [`build_phases`]).
fn take_inline(s: &mut Schema, foreign_keys: bool) -> Inline {
    let base: Vec<String> = parents_first(s).into_iter().cloned().collect();
    let mut clauses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Per plain table, the column sets of the keys it creates inline (what a foreign key needs).
    let mut keys: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
    for (t, table) in s.tables.iter_mut().filter(|(_, t)| plain(t)) {
        let own: Vec<String> = table
            .constraints
            .iter()
            .filter(|(_, c)| c.kind != ConstraintKind::Foreign && c.validated)
            .map(|(name, _)| name.clone())
            .collect();
        for name in own {
            let c = table.constraints.remove(&name).expect("listed above");
            // A foreign key cannot use a deferrable key (PostgreSQL looks for another unique
            // index, which may come later): such a key does not let one go inline.
            if matches!(c.kind, ConstraintKind::Primary | ConstraintKind::Unique) && !c.deferrable {
                keys.entry(t.clone())
                    .or_default()
                    .push(c.columns.iter().cloned().collect());
            }
            clauses
                .entry(t.clone())
                .or_default()
                .push(clause(&name, &c.def));
        }
    }
    // Foreign keys that may go inline: name → the schema's table they need created first.
    let mut fks: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    if foreign_keys {
        for (t, table) in s.tables.iter().filter(|(_, t)| plain(t)) {
            for (name, c) in &table.constraints {
                let Some(fk) = c.foreign_key.as_ref().filter(|_| c.validated) else {
                    continue;
                };
                let has_key = |target: &str| {
                    let cols: BTreeSet<String> = fk.columns.iter().cloned().collect();
                    keys.get(target).is_some_and(|k| k.contains(&cols))
                };
                let after = match &fk.schema {
                    Some(_) => None,
                    None if fk.table == *t && has_key(t) => None,
                    None if fk.table != *t && has_key(&fk.table) => Some(fk.table.clone()),
                    None => continue,
                };
                fks.entry(t.clone())
                    .or_default()
                    .push((name.clone(), after));
            }
        }
    }
    let mut order = Vec::with_capacity(base.len());
    let mut state: BTreeMap<String, bool> = BTreeMap::new(); // false: being placed, true: placed
    for t in &base {
        place(t, &mut fks, &mut state, &mut order);
    }
    for (t, list) in fks {
        let table = s.tables.get_mut(&t).expect("a table of the schema");
        for (name, _) in list {
            let c = table.constraints.remove(&name).expect("listed above");
            clauses
                .entry(t.clone())
                .or_default()
                .push(clause(&name, &c.def));
        }
    }
    Inline { clauses, order }
}

/// Depth first: `t` after the tables its inline foreign keys reference; a key whose table is
/// still being placed (a cycle) is taken off the inline list.
fn place(
    t: &String,
    fks: &mut BTreeMap<String, Vec<(String, Option<String>)>>,
    state: &mut BTreeMap<String, bool>,
    order: &mut Vec<String>,
) {
    if state.contains_key(t) {
        return;
    }
    state.insert(t.clone(), false);
    let targets: Vec<(String, String)> = fks
        .get(t)
        .into_iter()
        .flatten()
        .filter_map(|(name, after)| after.clone().map(|a| (name.clone(), a)))
        .collect();
    for (name, target) in targets {
        match state.get(&target) {
            Some(false) => {
                if let Some(list) = fks.get_mut(t) {
                    list.retain(|(n, _)| *n != name);
                }
            }
            Some(true) => {}
            None => place(&target, fks, state, order),
        }
    }
    state.insert(t.clone(), true);
    order.push(t.clone());
}
