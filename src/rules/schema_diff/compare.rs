//! What differs between two descriptions, one row per difference, saying what: the column and
//! which of its properties, the constraint, index, policy or trigger with its definition, the
//! definition text of a view or function (a short excerpt around the first difference). Column
//! order is ignored. For `tenancy.compare_schemas` and `verify(deep => true)`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use super::creates::{column_sql, policy_clauses};
use super::model::{Column, Schema, Table};

const FIRST: &str = "in the first schema";
const SECOND: &str = "in the second schema";
/// Texts up to this many characters are shown whole; longer ones as an excerpt.
const SHORT: usize = 80;
/// Characters of context shown before the first difference, and the excerpt's length.
const BEFORE: usize = 30;
const EXCERPT: usize = 90;

/// `(object, difference)` rows, e.g. `("table users", "column locale: only in the second schema
/// (text NOT NULL DEFAULT 'en'::text)")`; none when the descriptions are the same.
pub fn differences(a: &Schema, b: &Schema) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, x, y) in pairs(&a.sequences, &b.sequences) {
        let object = format!("sequence {name}");
        match (x, y) {
            (Some(x), Some(y)) => {
                let fields: [(&str, String, String); 8] = [
                    ("type", x.ty.clone(), y.ty.clone()),
                    ("start", x.start.to_string(), y.start.to_string()),
                    (
                        "increment",
                        x.increment.to_string(),
                        y.increment.to_string(),
                    ),
                    ("minimum", x.min.to_string(), y.min.to_string()),
                    ("maximum", x.max.to_string(), y.max.to_string()),
                    ("cache", x.cache.to_string(), y.cache.to_string()),
                    ("cycle", x.cycle.to_string(), y.cycle.to_string()),
                    ("owned by", opt(&x.owned_by), opt(&y.owned_by)),
                ];
                for (field, p, q) in fields {
                    if p != q {
                        out.push((object.clone(), values(field, &p, &q)));
                    }
                }
            }
            (x, _) => out.push((object, only(x.is_some(), None))),
        }
    }
    for (name, x, y) in pairs(&a.tables, &b.tables) {
        let object = format!("table {name}");
        match (x, y) {
            (Some(x), Some(y)) => {
                for d in table(x, y) {
                    out.push((object.clone(), d));
                }
            }
            (x, _) => out.push((object, only(x.is_some(), None))),
        }
    }
    for (name, x, y) in pairs(&a.views, &b.views) {
        let object = format!("view {name}");
        match (x, y) {
            (Some(x), Some(y)) => {
                if x.materialized != y.materialized {
                    let kind = |m: bool| {
                        if m {
                            "materialized"
                        } else {
                            "not materialized"
                        }
                    };
                    out.push((
                        object.clone(),
                        format!(
                            "{} {FIRST}, {} {SECOND}",
                            kind(x.materialized),
                            kind(y.materialized)
                        ),
                    ));
                }
                if x.def != y.def {
                    out.push((object, texts("definition", &x.def, &y.def)));
                }
            }
            (x, y) => out.push((object, only(x.is_some(), x.or(y).map(|v| v.def.as_str())))),
        }
    }
    for (name, x, y) in pairs(&a.functions, &b.functions) {
        let object = format!("{} {name}", x.or(y).map_or("function", |f| kind(&f.kind)));
        match (x, y) {
            (Some(x), Some(y)) => {
                if x.kind != y.kind {
                    out.push((object.clone(), values("kind", &x.kind, &y.kind)));
                }
                if x.def != y.def {
                    out.push((object, texts("definition", &x.def, &y.def)));
                }
            }
            (x, _) => out.push((object, only(x.is_some(), None))),
        }
    }
    out
}

fn kind(k: &str) -> &'static str {
    if k == "PROCEDURE" {
        "procedure"
    } else {
        "function"
    }
}

/// Every key of either map, with what each side has under it.
fn pairs<'a, V>(
    a: &'a BTreeMap<String, V>,
    b: &'a BTreeMap<String, V>,
) -> Vec<(&'a String, Option<&'a V>, Option<&'a V>)> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().map(|k| (k, a.get(k), b.get(k))).collect()
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "none".into())
}

/// "only in the first schema", with what it is when that helps.
fn only(in_first: bool, what: Option<&str>) -> String {
    let side = if in_first { FIRST } else { SECOND };
    match what {
        Some(w) => format!("only {side} ({})", short(w)),
        None => format!("only {side}"),
    }
}

/// "`what` x in the first schema, y in the second schema".
fn values(what: &str, x: &impl Display, y: &impl Display) -> String {
    format!("{what} {x} {FIRST}, {y} {SECOND}")
}

/// Whitespace collapsed, cut to an excerpt when long.
fn short(text: &str) -> String {
    let one: Vec<char> = one_line(text).chars().collect();
    if one.len() <= SHORT {
        return one.into_iter().collect();
    }
    format!("{}…", one[..EXCERPT].iter().collect::<String>())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Two texts that differ: whole when short, otherwise an excerpt of each from a little before the
/// first difference.
fn texts(what: &str, x: &str, y: &str) -> String {
    let (x, y): (Vec<char>, Vec<char>) =
        (one_line(x).chars().collect(), one_line(y).chars().collect());
    if x == y {
        return format!("{what} differs in layout only");
    }
    let s = |v: &[char]| v.iter().collect::<String>();
    if x.len() <= SHORT && y.len() <= SHORT {
        return format!("{what} \"{}\" {FIRST}, \"{}\" {SECOND}", s(&x), s(&y));
    }
    let at = x.iter().zip(&y).take_while(|(p, q)| p == q).count();
    let start = at.saturating_sub(BEFORE);
    let cut = |v: &[char]| {
        let end = (start + EXCERPT).min(v.len());
        format!(
            "{}{}{}",
            if start > 0 { "…" } else { "" },
            s(&v[start.min(v.len())..end]),
            if end < v.len() { "…" } else { "" }
        )
    };
    format!(
        "{what} differs at character {}: \"{}\" {FIRST}, \"{}\" {SECOND}",
        at + 1,
        cut(&x),
        cut(&y)
    )
}

fn column_type(c: &Column) -> String {
    match &c.collation {
        Some(coll) => format!("{} COLLATE {coll}", c.ty),
        None => c.ty.clone(),
    }
}

/// The differences of one table present on both sides.
fn table(x: &Table, y: &Table) -> Vec<String> {
    let mut out = Vec::new();
    if x.partition_by != y.partition_by {
        let key = |k: &Option<String>| match k {
            Some(k) => format!("partitioned by {k}"),
            None => "not partitioned".into(),
        };
        out.push(format!(
            "{} {FIRST}, {} {SECOND}",
            key(&x.partition_by),
            key(&y.partition_by)
        ));
    }
    if x.partition_of != y.partition_of {
        let of = |p: &Option<super::model::PartitionOf>| match p {
            Some(p) => format!("partition of {} {}", p.parent_sql(), p.bound),
            None => "not a partition".into(),
        };
        out.push(format!(
            "{} {FIRST}, {} {SECOND}",
            of(&x.partition_of),
            of(&y.partition_of)
        ));
    }
    // Columns, in the first schema's order, then those only in the second.
    let names: Vec<&String> = x
        .columns
        .iter()
        .chain(y.columns.iter().filter(|c| x.column(&c.name).is_none()))
        .map(|c| &c.name)
        .collect();
    for name in names {
        let column = |d: String| format!("column {name}: {d}");
        match (x.column(name), y.column(name)) {
            (Some(p), Some(q)) => {
                if column_type(p) != column_type(q) {
                    out.push(column(values("type", &column_type(p), &column_type(q))));
                }
                if p.default != q.default {
                    out.push(column(values(
                        "default",
                        &opt(&p.default),
                        &opt(&q.default),
                    )));
                }
                if p.not_null != q.not_null {
                    let n = |b: bool| if b { "NOT NULL" } else { "nullable" };
                    out.push(column(format!(
                        "{} {FIRST}, {} {SECOND}",
                        n(p.not_null),
                        n(q.not_null)
                    )));
                }
                if p.generated != q.generated {
                    out.push(column(values(
                        "generated",
                        &opt(&p.generated),
                        &opt(&q.generated),
                    )));
                }
                if p.identity != q.identity {
                    out.push(column(values(
                        "identity",
                        &opt(&p.identity),
                        &opt(&q.identity),
                    )));
                }
                if p.identity_options != q.identity_options {
                    out.push(column(values(
                        "identity options",
                        &opt(&p.identity_options),
                        &opt(&q.identity_options),
                    )));
                }
            }
            (p, q) => {
                let c = p.or(q).expect("a column of either side");
                let sql = column_sql(c);
                let prefix = format!("{} ", crate::rules::names::quote_ident(&c.name));
                let rest = sql.strip_prefix(&prefix).unwrap_or(&sql);
                out.push(column(only(p.is_some(), Some(rest))));
            }
        }
    }
    for (name, p, q) in pairs(&x.constraints, &y.constraints) {
        let d = match (p, q) {
            (Some(p), Some(q)) if p == q => continue,
            (Some(p), Some(q)) if p.def != q.def => texts("definition", &p.def, &q.def),
            (Some(p), Some(q)) => format!(
                "differs in how it is kept (deferrable {}/{}, initially deferred {}/{}, validated {}/{}: first/second schema)",
                p.deferrable, q.deferrable, p.initially_deferred, q.initially_deferred, p.validated, q.validated
            ),
            (p, q) => only(p.is_some(), p.or(q).map(|c| c.def.as_str())),
        };
        out.push(format!("constraint {name}: {d}"));
    }
    for (name, p, q) in pairs(&x.indexes, &y.indexes) {
        let d = match (p, q) {
            (Some(p), Some(q)) if p == q => continue,
            (Some(p), Some(q)) => texts("definition", p, q),
            (p, q) => only(p.is_some(), p.or(q).map(String::as_str)),
        };
        out.push(format!("index {name}: {d}"));
    }
    if x.rls != y.rls {
        let on = |b: bool| if b { "enabled" } else { "disabled" };
        out.push(format!(
            "row level security {} {FIRST}, {} {SECOND}",
            on(x.rls),
            on(y.rls)
        ));
    }
    if x.force_rls != y.force_rls {
        let on = |b: bool| if b { "forced" } else { "not forced" };
        out.push(format!(
            "row level security {} {FIRST}, {} {SECOND}",
            on(x.force_rls),
            on(y.force_rls)
        ));
    }
    for (name, p, q) in pairs(&x.policies, &y.policies) {
        let d = match (p, q) {
            (Some(p), Some(q)) if p == q => continue,
            (Some(p), Some(q)) => texts("definition", &policy_clauses(p), &policy_clauses(q)),
            (p, q) => only(p.is_some(), p.or(q).map(policy_clauses).as_deref()),
        };
        out.push(format!("policy {name}: {d}"));
    }
    for (name, p, q) in pairs(&x.triggers, &y.triggers) {
        let d = match (p, q) {
            (Some(p), Some(q)) if p == q => continue,
            (Some(p), Some(q)) => texts("definition", p, q),
            (p, q) => only(p.is_some(), p.or(q).map(String::as_str)),
        };
        out.push(format!("trigger {name}: {d}"));
    }
    out
}
