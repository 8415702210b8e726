//! The migration generator's pure half: two schema descriptions (as `tenancy.describe_schema`
//! produces them) in, the ordered DDL that turns the first into the second out.
//!
//! Pure: no pgrx. Order: drop what goes (views, triggers, functions, foreign keys, other
//! constraints, indexes, policies, columns, tables, sequences: `drops`), then create
//! (sequences, tables, columns, column changes, sequence ownership, constraints, indexes, foreign
//! keys, row-level security, functions, triggers, views in dependency order: `creates`). Names are
//! always quoted. The types are in `model`.

mod build;
mod compare;
mod creates;
mod drops;
mod model;

use std::collections::{BTreeMap, BTreeSet};

use crate::rules::names::quote_ident;

pub use build::build_phases;
pub use compare::differences;
pub use model::*;

/// The two descriptions being diffed, with the facts several steps share.
struct Pair<'a> {
    from: &'a Schema,
    to: &'a Schema,
    /// Tables in both, not replaced.
    kept_tables: Vec<&'a String>,
    /// Tables in both that PostgreSQL cannot turn into the new one in place (the partition key,
    /// or the partitioned table or bound a partition belongs to, changes; or its parent is
    /// replaced): dropped and created again.
    replaced: BTreeSet<&'a String>,
    /// Kept tables whose columns change type or disappear, and replaced tables: views over them
    /// are rebuilt.
    reshaped: BTreeSet<&'a String>,
}

impl<'a> Pair<'a> {
    fn new(from: &'a Schema, to: &'a Schema) -> Self {
        let both: Vec<&String> = to
            .tables
            .keys()
            .filter(|t| from.tables.contains_key(*t))
            .collect();
        let mut replaced: BTreeSet<&String> = BTreeSet::new();
        loop {
            let before = replaced.len();
            for t in &both {
                let (a, b) = (&from.tables[*t], &to.tables[*t]);
                let parent_replaced = b
                    .partition_of
                    .as_ref()
                    .and_then(|p| p.own_parent())
                    .is_some_and(|p| replaced.contains(p));
                if a.partition_by != b.partition_by
                    || a.partition_of != b.partition_of
                    || parent_replaced
                {
                    replaced.insert(*t);
                }
            }
            if replaced.len() == before {
                break;
            }
        }
        let kept_tables: Vec<&String> = both
            .into_iter()
            .filter(|t| !replaced.contains(*t))
            .collect();
        let reshaped = kept_tables
            .iter()
            .filter(|t| {
                let (a, b) = (&from.tables[**t], &to.tables[**t]);
                a.columns
                    .iter()
                    .any(|c| b.column(&c.name).is_none_or(|n| n.ty != c.ty))
            })
            .copied()
            .chain(replaced.iter().copied())
            .collect();
        Pair {
            from,
            to,
            kept_tables,
            replaced,
            reshaped,
        }
    }

    /// The table as it was, unless it is replaced (then it is created anew).
    fn old(&self, t: &str) -> Option<&'a Table> {
        self.from
            .tables
            .get(t)
            .filter(|_| !self.replaced.contains(&t.to_string()))
    }

    /// The table as it will be, unless it is replaced (then it goes first).
    fn new_table(&self, t: &str) -> Option<&'a Table> {
        self.to
            .tables
            .get(t)
            .filter(|_| !self.replaced.contains(&t.to_string()))
    }

    /// A constraint that stays as it is: the same on both sides, on a table that stays, and not
    /// a foreign key to a replaced table (dropping that table would take the key along).
    fn constraint_unchanged(&self, t: &str, name: &str) -> bool {
        let a = self.old(t).and_then(|o| o.constraints.get(name));
        let b = self.new_table(t).and_then(|n| n.constraints.get(name));
        match (a, b) {
            (Some(a), Some(b)) => {
                a == b
                    && !a
                        .foreign_key
                        .as_ref()
                        .is_some_and(|f| f.schema.is_none() && self.replaced.contains(&f.table))
            }
            _ => false,
        }
    }

    /// A view that is not in both, differs, or reads a reshaped table.
    fn view_changed(&self, name: &String) -> bool {
        match (self.from.views.get(name), self.to.views.get(name)) {
            (Some(a), Some(b)) => a != b || a.depends_on.iter().any(|d| self.reshaped.contains(d)),
            _ => true,
        }
    }
}

/// The own parent of a partition, when the schema has it.
fn own_parent<'a>(s: &'a Schema, t: &Table) -> Option<&'a Table> {
    t.partition_of
        .as_ref()
        .and_then(|p| p.own_parent())
        .and_then(|p| s.tables.get(p))
}

/// The tables of `s`, each partitioned table before its partitions (then by name).
fn parents_first(s: &Schema) -> Vec<&String> {
    let depth = |start: &String| {
        let mut t: &String = start;
        let mut d = 0;
        while let Some(p) = s.tables[t]
            .partition_of
            .as_ref()
            .and_then(|p| p.own_parent())
        {
            match s.tables.get_key_value(p) {
                Some((k, _)) if d < s.tables.len() => {
                    t = k;
                    d += 1;
                }
                _ => break,
            }
        }
        d
    };
    let mut names: Vec<&String> = s.tables.keys().collect();
    names.sort_by_key(|t| depth(t));
    names
}

/// The DDL turning `from` into `to`, as statements without trailing semicolons.
pub fn diff(from: &Schema, to: &Schema, tenants: &TenantColumns) -> Vec<String> {
    let p = Pair::new(from, to);
    [
        drops::views(&p),
        drops::triggers(&p),
        drops::functions(&p),
        drops::constraints(&p),
        drops::table_parts(&p),
        drops::tables(&p),
        drops::sequences(&p),
        creates::sequences(&p),
        creates::tables_and_columns(&p, None),
        creates::sequence_ownership(&p),
        creates::constraints_and_indexes(&p, tenants),
        creates::row_level_security(&p),
        creates::functions(&p),
        creates::triggers(&p),
        creates::views(&p),
    ]
    .concat()
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

/// The first statement that still names `schema` (the template the DDL was generated from):
/// `"schema"` or `schema.` in code, or `"schema"` inside a string literal or a body. Generated DDL
/// runs in every tenant, so it must never refer to the template.
pub fn names_schema<'a>(statements: &'a [String], schema: &str) -> Option<&'a String> {
    statements
        .iter()
        .find(|s| crate::rules::sqltext::tenantize(s, schema) != **s)
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

#[cfg(test)]
mod tests;
