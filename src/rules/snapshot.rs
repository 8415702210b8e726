//! Snapshots' pure half (docs/snapshots.md): the squashed form of a migration set, built from the
//! description of a schema the migrations produced (the generator's model plus the
//! [`Extras`] `tenancy._snapshot_extras` reads), the fingerprint that says which set it is for,
//! and the comparison of two descriptions' extras for the proof.
//!
//! Order of the squashed form: enum types with their final values; sequences and tables with all
//! their columns and the constraints their CREATE TABLE can carry (`schema_diff::build_phases`;
//! foreign keys only when no rows are left); the rows the migrations left (bound as a parameter,
//! never substituted); sequence positions that differ from a new sequence's; the other
//! constraints, indexes, row-level security, functions, triggers and views (the generator's
//! `creates` from an empty schema); shared references through
//! `tenancy.reference_shared` (never a native foreign key it would then drop: the described
//! schema has none left); privileges; comments.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::rules::names::{quote_ident as q, quote_literal};
use crate::rules::schema_diff::{self, Schema};

/// One statement of the squashed form, run as the tenant's owner with `@tenant@` substituted in
/// `sql` only.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Step {
    pub sql: String,
    /// Rows (a JSON array), bound as `$1`: data is never substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// A comment's text, appended as ` IS <literal>` after substitution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is: Option<String>,
}

impl Step {
    fn ddl(sql: String) -> Step {
        Step {
            sql,
            ..Step::default()
        }
    }
}

/// What `tenancy._snapshot_extras` describes beyond the generator's model.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Extras {
    #[serde(default)]
    pub enums: BTreeMap<String, Vec<String>>,
    /// Privilege target (`TABLE @tenant@."t"`, `(col) ON TABLE @tenant@."t"`, …) → entries.
    #[serde(default)]
    pub acls: BTreeMap<String, Vec<AclEntry>>,
    /// `COMMENT ON` target → text.
    #[serde(default)]
    pub comments: BTreeMap<String, String>,
    #[serde(default)]
    pub data: BTreeMap<String, Rows>,
    /// Sequence → (last_value, is_called).
    #[serde(default)]
    pub sequences: BTreeMap<String, (i64, bool)>,
    #[serde(default)]
    pub references: Vec<Reference>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct AclEntry {
    /// A quoted role name, `PUBLIC`, or `@owner@` (the schema's owner).
    pub grantee: String,
    pub privilege: String,
    pub grantable: bool,
    pub by_owner: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Rows {
    /// The columns rows are inserted into (not the generated ones).
    pub columns: Vec<String>,
    pub rows: Value,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Reference {
    pub table: String,
    pub name: String,
    pub columns: Vec<String>,
    pub shared: String,
    pub key: Vec<String>,
}

fn name_array(v: &[String]) -> String {
    format!(
        "ARRAY[{}]::pg_catalog.name[]",
        v.iter()
            .map(|s| quote_literal(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The squashed form of the schema `model` + `extras` describe.
pub fn squash(model: &Schema, extras: &Extras) -> Vec<Step> {
    let mut out = Vec::new();
    for (name, labels) in &extras.enums {
        out.push(Step::ddl(format!(
            "CREATE TYPE @tenant@.{} AS ENUM ({})",
            q(name),
            labels
                .iter()
                .map(|l| quote_literal(l))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // A shared reference's trigger comes with tenancy.reference_shared, which goes last.
    let mut model = model.clone();
    for r in &extras.references {
        if let Some(t) = model.tables.get_mut(&r.table) {
            t.triggers.remove(&r.name);
        }
    }
    // Rows go in table by table: foreign keys then come after them.
    let (relations, rest) = schema_diff::build_phases(&model, extras.data.is_empty());
    out.extend(relations.into_iter().map(Step::ddl));
    for (table, rows) in &extras.data {
        let cols = rows
            .columns
            .iter()
            .map(|c| q(c))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(Step {
            sql: format!(
                "INSERT INTO @tenant@.{t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM pg_catalog.jsonb_populate_recordset(NULL::@tenant@.{t}, $1::pg_catalog.jsonb)",
                t = q(table)
            ),
            json: Some(rows.rows.to_string()),
            is: None,
        });
    }
    for (seq, (value, called)) in &extras.sequences {
        out.push(Step::ddl(format!(
            "SELECT pg_catalog.setval({}, {value}, {called})",
            quote_literal(&format!("@tenant@.{}", q(seq)))
        )));
    }
    out.extend(rest.into_iter().map(Step::ddl));
    for r in &extras.references {
        out.push(Step::ddl(format!(
            "SELECT tenancy.reference_shared({}, {}, {}, {})",
            quote_literal(&format!("@tenant@.{}", q(&r.table))),
            name_array(&r.columns),
            quote_literal(&r.shared),
            name_array(&r.key)
        )));
    }
    for (target, entries) in &extras.acls {
        let column = target.starts_with('(');
        if !column {
            out.push(Step::ddl(format!("REVOKE ALL ON {target} FROM PUBLIC")));
            out.push(Step::ddl(format!(
                "REVOKE ALL ON {target} FROM CURRENT_USER"
            )));
        }
        for e in entries {
            let to = match e.grantee.as_str() {
                "@owner@" => "CURRENT_USER",
                g => g,
            };
            let on = if column {
                target.clone()
            } else {
                format!("ON {target}")
            };
            out.push(Step::ddl(format!(
                "GRANT {} {on} TO {to}{}",
                e.privilege,
                if e.grantable {
                    " WITH GRANT OPTION"
                } else {
                    ""
                }
            )));
        }
    }
    for (target, text) in &extras.comments {
        out.push(Step {
            sql: format!("COMMENT ON {target}"),
            json: None,
            is: Some(text.clone()),
        });
    }
    out
}

/// The statement a step runs, once `@tenant@` has been substituted in `sql` (`substituted`).
pub fn statement(step: &Step, substituted: &str) -> String {
    match &step.is {
        Some(text) => format!("{substituted} IS {}", quote_literal(text)),
        None => substituted.to_string(),
    }
}

/// Functions whose value depends on when a migration runs and that two replays of one build
/// share (one transaction): rows a migration inserts with them differ from tenant to tenant under
/// replay, which comparing two replays cannot find.
const CLOCK: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "statement_timestamp",
    "transaction_timestamp",
];

/// Functions whose value differs at every call: the second replay finds what they write, the
/// text rules name them first.
const CHANCE: &[&str] = &[
    "clock_timestamp",
    "timeofday",
    "random",
    "setseed",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v4",
];

/// Functions whose value depends on the session, the transaction or the schema a migration runs
/// in, and that two replays of one build share (one session, one transaction) or that a scratch
/// schema's name answers differently from a tenant's: outside a definition they may shape what a
/// migration builds (`EXECUTE format(…, current_schema())`), and with rows, anywhere (a function
/// a migration calls while inserting).
const SESSION: &[&str] = &[
    "current_schema",
    "current_schemas",
    "session_user",
    "current_setting",
    "current_query",
    "pg_backend_pid",
    "txid_current",
    "txid_current_if_assigned",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    "inet_client_addr",
    "inet_client_port",
    "inet_server_addr",
    "inet_server_port",
    "pg_postmaster_start_time",
    "pg_conf_load_time",
];

/// The first function of [`SESSION`] that `text` names, if any.
pub fn names_session(text: &str) -> Option<&'static str> {
    word_in(SESSION, text)
}

/// Date/time input literals that PostgreSQL reads as the current time (`'today'`, …), quoted.
const CLOCK_LITERALS: &[&str] = &["'now'", "'today'", "'tomorrow'", "'yesterday'"];

fn word_in(list: &[&'static str], text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
    list.iter().copied().find(|f| {
        lower.match_indices(f).any(|(i, _)| {
            let before = i == 0 || !word(bytes[i - 1]);
            let end = i + f.len();
            let after = end >= bytes.len() || !word(bytes[end]);
            before && after
        })
    })
}

/// The first of [`CLOCK_LITERALS`] that `text` holds (any case, spaces inside the quotes allowed).
fn clock_literal(text: &str) -> Option<&'static str> {
    let squeezed: String = text
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    CLOCK_LITERALS
        .iter()
        .copied()
        .find(|l| squeezed.contains(l))
}

/// The first function of [`CLOCK`], [`CHANCE`] or [`SESSION`] that `text` names as a word (any
/// case), or a literal of [`CLOCK_LITERALS`] it holds, if any: what makes rows a statement writes
/// differ from tenant to tenant.
pub fn names_volatile(text: &str) -> Option<&'static str> {
    word_in(CLOCK, text)
        .or_else(|| word_in(CHANCE, text))
        .or_else(|| word_in(SESSION, text))
        .or_else(|| clock_literal(text))
}

/// The first function of [`CLOCK`] that `text` names, or a literal of [`CLOCK_LITERALS`].
pub fn names_clock(text: &str) -> Option<&'static str> {
    word_in(CLOCK, text).or_else(|| clock_literal(text))
}

/// How a finding of [`names_volatile`] / [`names_clock`] reads in a reason: `now()`, `'today'`.
pub fn shown(found: &str) -> String {
    if found.starts_with('\'') {
        found.to_string()
    } else {
        format!("{found}()")
    }
}

/// Whether a column of this type (as `format_type` prints it) holds dates or times, which the
/// clock functions and literals feed.
pub fn is_time_type(ty: &str) -> bool {
    let t = ty.trim_end_matches("[]");
    t == "date"
        || t.starts_with("timestamp")
        || t.starts_with("time ")
        || t.starts_with("time(")
        || t == "time"
}

/// Statements that only define objects: a volatile function they name (a column default, a
/// function body) does not make the rows a migration leaves depend on when it ran.
const DEFINING: &[&[&str]] = &[
    &["CREATE", "TABLE"],
    &["CREATE", "UNLOGGED", "TABLE"],
    &["ALTER", "TABLE"],
    &["CREATE", "FUNCTION"],
    &["CREATE", "OR", "REPLACE", "FUNCTION"],
    &["CREATE", "PROCEDURE"],
    &["CREATE", "OR", "REPLACE", "PROCEDURE"],
    &["CREATE", "VIEW"],
    &["CREATE", "OR", "REPLACE", "VIEW"],
    &["CREATE", "INDEX"],
    &["CREATE", "UNIQUE", "INDEX"],
    &["CREATE", "TRIGGER"],
    &["CREATE", "OR", "REPLACE", "TRIGGER"],
    &["CREATE", "POLICY"],
    &["COMMENT"],
];

fn defining(words: &[String]) -> bool {
    DEFINING
        .iter()
        .any(|d| words.len() >= d.len() && words.iter().zip(d.iter()).all(|(w, d)| w == d))
}

/// The first statement of a migration (its upper-cased leading words and text) that may write
/// rows with a function [`names_volatile`] finds, with the function.
pub fn volatile_write<'a>(
    statements: impl IntoIterator<Item = (&'a [String], &'a str)>,
) -> Option<&'static str> {
    outside_definitions(statements, names_volatile)
}

/// The first statement that is not a definition and names a function of [`SESSION`], or of
/// [`CLOCK`] or [`CHANCE`] (a `DO` block naming a table after the clock leaves no row to compare,
/// and both replays share the transaction's clock), with it.
pub fn session_use<'a>(
    statements: impl IntoIterator<Item = (&'a [String], &'a str)>,
) -> Option<&'static str> {
    outside_definitions(statements, |t| {
        names_session(t).or_else(|| names_volatile(t))
    })
}

/// What `find` finds first in a statement that is not a definition (comments left out).
fn outside_definitions<'a>(
    statements: impl IntoIterator<Item = (&'a [String], &'a str)>,
    find: fn(&str) -> Option<&'static str>,
) -> Option<&'static str> {
    statements.into_iter().find_map(|(words, text)| {
        if defining(words) {
            None
        } else {
            find(&crate::rules::sqltext::without_comments(text))
        }
    })
}

/// The first table whose rows differ between two extras descriptions (as JSON), if any.
pub fn rows_differing(a: &Value, b: &Value) -> Option<String> {
    let empty = serde_json::Map::new();
    let data = |v: &Value| {
        v.get("data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| empty.clone())
    };
    let (da, db) = (data(a), data(b));
    da.keys()
        .chain(db.keys())
        .find(|t| da.get(*t) != db.get(*t))
        .cloned()
}

/// Hex sha256 over the parts (each ended by a NUL, so that parts cannot run into each other).
pub fn fingerprint(parts: &[String]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What differs between two extras descriptions (as JSON, each with its own schema's name
/// already replaced by `@tenant@`): `(what, difference)` pairs, none when equal.
pub fn extras_differences(a: &Value, b: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        if a != b {
            out.push(("description".to_string(), "differs".to_string()));
        }
        return out;
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let mut inner: Vec<&String> = x.keys().chain(y.keys()).collect();
                inner.sort();
                inner.dedup();
                for i in inner {
                    match (x.get(i), y.get(i)) {
                        (Some(p), Some(r)) if p == r => {}
                        (Some(_), Some(_)) => out.push((format!("{k} {i}"), "differs".into())),
                        (Some(_), None) => {
                            out.push((format!("{k} {i}"), "only in the replayed schema".into()))
                        }
                        (None, _) => {
                            out.push((format!("{k} {i}"), "only in the snapshot's schema".into()))
                        }
                    }
                }
            }
            (x, y) if x == y => {}
            _ => out.push((k.clone(), "differs".into())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extras(json: &str) -> Extras {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn enums_tables_rows_then_the_rest() {
        let model: Schema = serde_json::from_str(
            r#"{"tables": {"t": {"columns": [{"name": "id", "type": "bigint", "not_null": true,
                 "default": null, "generated": null, "identity": null, "collation": null},
                {"name": "m", "type": "mood", "not_null": false, "default": null, "generated": null,
                 "identity": null, "collation": null}],
               "constraints": {"t_pkey": {"kind": "primary", "def": "PRIMARY KEY (id)", "columns": ["id"],
                 "deferrable": false, "initially_deferred": false, "validated": true, "foreign_key": null},
                 "t_id_check": {"kind": "check", "def": "CHECK ((id > 0)) NOT VALID", "columns": ["id"],
                 "deferrable": false, "initially_deferred": false, "validated": false, "foreign_key": null}},
               "triggers": {"t_x_shared_ref": "CREATE TRIGGER t_x_shared_ref AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION tenancy._shared_ref_check()"}}}}"#,
        )
        .unwrap();
        let x = extras(
            r#"{"enums": {"mood": ["sad", "ok", "happy"]},
                "data": {"t": {"columns": ["id", "m"], "rows": [{"id": 1, "m": "ok"}]}},
                "sequences": {"s": [5, true]},
                "references": [{"table": "t", "name": "t_x_shared_ref", "columns": ["x"], "shared": "public.plans", "key": ["id"]}],
                "acls": {"TABLE @tenant@.\"t\"": [{"grantee": "@owner@", "privilege": "SELECT", "grantable": false, "by_owner": true},
                                                   {"grantee": "\"app\"", "privilege": "SELECT", "grantable": true, "by_owner": true}]},
                "comments": {"TABLE @tenant@.t": "it's"}}"#,
        );
        let steps = squash(&model, &x);
        let sql: Vec<&str> = steps.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql[0],
            "CREATE TYPE @tenant@.\"mood\" AS ENUM ('sad', 'ok', 'happy')"
        );
        assert!(sql[1].starts_with("CREATE TABLE \"t\""), "{}", sql[1]);
        // a valid key goes into CREATE TABLE; a NOT VALID check keeps its ALTER TABLE (CREATE
        // TABLE would mark it valid)
        assert!(
            sql[1].ends_with(",\n    CONSTRAINT \"t_pkey\" PRIMARY KEY (id)\n)"),
            "{}",
            sql[1]
        );
        assert!(sql[2]
            .starts_with("INSERT INTO @tenant@.\"t\" (\"id\", \"m\") OVERRIDING SYSTEM VALUE"));
        assert_eq!(steps[2].json.as_deref(), Some(r#"[{"id":1,"m":"ok"}]"#));
        assert_eq!(
            sql[3],
            "SELECT pg_catalog.setval('@tenant@.\"s\"', 5, true)"
        );
        assert_eq!(
            sql[4],
            "ALTER TABLE \"t\" ADD CONSTRAINT \"t_id_check\" CHECK ((id > 0)) NOT VALID"
        );
        // the reference's trigger is not created by hand: reference_shared makes it
        assert!(!sql.iter().any(|s| s.starts_with("CREATE TRIGGER")));
        assert!(sql[5].starts_with("SELECT tenancy.reference_shared('@tenant@.\"t\"'"));
        assert_eq!(sql[6], "REVOKE ALL ON TABLE @tenant@.\"t\" FROM PUBLIC");
        assert_eq!(
            sql[8],
            "GRANT SELECT ON TABLE @tenant@.\"t\" TO CURRENT_USER"
        );
        assert_eq!(
            sql[9],
            "GRANT SELECT ON TABLE @tenant@.\"t\" TO \"app\" WITH GRANT OPTION"
        );
        let last = steps.last().unwrap();
        assert_eq!(
            statement(last, "COMMENT ON TABLE \"org\".t"),
            "COMMENT ON TABLE \"org\".t IS 'it''s'"
        );
    }

    #[test]
    fn volatile_functions_are_found_as_words() {
        assert_eq!(names_volatile("INSERT INTO t VALUES (NOW())"), Some("now"));
        assert_eq!(
            names_volatile("x DEFAULT clock_timestamp()"),
            Some("clock_timestamp")
        );
        assert_eq!(names_volatile("SELECT known, snowflake FROM t"), None);
        assert_eq!(names_volatile("SELECT random_name FROM t"), None);
    }

    #[test]
    fn session_functions_outside_definitions() {
        let w = |s: &str| {
            s.split_whitespace()
                .map(|x| x.to_uppercase())
                .collect::<Vec<_>>()
        };
        let (r#do, func) = (w("DO $d$"), w("CREATE FUNCTION f()"));
        assert_eq!(
            session_use([(
                r#do.as_slice(),
                "DO $d$ BEGIN EXECUTE format('x%s', current_schema()); END $d$"
            )]),
            Some("current_schema")
        );
        assert_eq!(
            session_use([(
                func.as_slice(),
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT pg_backend_pid()'"
            )]),
            None
        );
        assert_eq!(names_session("SELECT current_schema_name"), None);
    }

    #[test]
    fn clock_literals_and_time_types() {
        assert_eq!(
            names_volatile("INSERT INTO t VALUES ( ' Today ' )"),
            Some("'today'")
        );
        assert_eq!(names_clock("SELECT random()"), None);
        assert_eq!(names_clock("DEFAULT now()"), Some("now"));
        assert_eq!(names_clock("x = 'nowhere'"), None);
        assert_eq!(shown("now"), "now()");
        assert_eq!(shown("'today'"), "'today'");
        for t in [
            "date",
            "timestamp with time zone",
            "timestamp(3) without time zone",
            "time without time zone",
            "date[]",
        ] {
            assert!(is_time_type(t), "{t}");
        }
        for t in ["text", "interval", "timezone_name", "integer"] {
            assert!(!is_time_type(t), "{t}");
        }
    }

    #[test]
    fn only_statements_that_may_write_rows_count() {
        let w = |s: &str| {
            s.split_whitespace()
                .map(|x| x.to_uppercase())
                .collect::<Vec<_>>()
        };
        let create = w("CREATE TABLE t");
        let insert = w("INSERT INTO t");
        assert_eq!(
            volatile_write([(
                create.as_slice(),
                "CREATE TABLE t (at timestamptz DEFAULT now())"
            )]),
            None
        );
        assert_eq!(
            volatile_write([(insert.as_slice(), "INSERT INTO t VALUES (random())")]),
            Some("random")
        );
        let r#do = w("DO $$");
        assert_eq!(
            volatile_write([(
                r#do.as_slice(),
                "DO $$ BEGIN -- now and then\n NULL; END $$"
            )]),
            None
        );
    }

    #[test]
    fn fingerprint_separates_parts() {
        assert_ne!(
            fingerprint(&["ab".into(), "c".into()]),
            fingerprint(&["a".into(), "bc".into()])
        );
        assert_eq!(fingerprint(&["x".into()]).len(), 64);
    }

    #[test]
    fn differences_name_the_entry() {
        let a: Value = serde_json::from_str(r#"{"enums": {"m": ["a", "b"]}, "data": {}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"enums": {"m": ["b", "a"]}, "data": {}}"#).unwrap();
        assert_eq!(
            extras_differences(&a, &b),
            vec![("enums m".to_string(), "differs".to_string())]
        );
        assert!(extras_differences(&a, &a).is_empty());
    }

    #[test]
    fn rows_differing_names_the_table() {
        let a: Value =
            serde_json::from_str(r#"{"data": {"k": {"columns": ["v"], "rows": [[1]]}}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"data": {"k": {"columns": ["v"], "rows": [[2]]}}}"#).unwrap();
        assert_eq!(rows_differing(&a, &b), Some("k".to_string()));
        assert_eq!(rows_differing(&a, &a), None);
    }
}
