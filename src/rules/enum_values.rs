//! Enum values and transactions (issue 13, case 2).
//!
//! PostgreSQL lets a value added with `ALTER TYPE … ADD VALUE` be used only once the transaction
//! that added it has committed (`55P04 unsafe use of new value`); measured on 14 to 18, the one
//! exception (17 and later) is a type created in the same top-level transaction, with no
//! savepoint in between. Values listed in `CREATE TYPE … AS ENUM (…)` are usable at once.
//!
//! Two rules follow, both pure:
//!
//! - [`adds_enum_values`]: a migration that adds enum values needs a commit before a later
//!   migration can use them. `CALL tenancy.migrate_all` commits right after such a migration.
//! - [`fold`]: where one transaction runs a `CREATE TYPE … AS ENUM` and, later, plain `ALTER TYPE
//!   … ADD VALUE` statements on that type (a new tenant is provisioned in one transaction; scratch
//!   builds too), the added values are written into the `CREATE TYPE` instead and the `ADD VALUE`
//!   statements are skipped. The type ends with the same values in the same order; the values
//!   exist from the `CREATE TYPE` on instead of from their `ADD VALUE`.
//!
//! Folding is conservative: it stops for a type at any statement that could see the difference
//! (one that lists enum values — `enum_range`, `enum_first`, `enum_last`, `pg_enum` — a `DO`
//! block naming the type, any other `ALTER TYPE` of it, a `DROP` naming it, `DROP SCHEMA` /
//! `DROP OWNED`, `ALTER SCHEMA`), and it never touches a migration that changes `search_path`
//! (names could then resolve elsewhere), a label list that is not plain string literals, a
//! neighbour (`BEFORE` / `AFTER`) it has not seen, or a value already there. What it leaves alone
//! runs as written.

use crate::rules::names::quote_literal;
use crate::rules::sqltext::{
    literal_contents, literal_value, names_schema, spanned_tokens, Spanned, Statement, Stored, Tok,
};

/// PostgreSQL's longest enum label (NAMEDATALEN - 1 bytes).
const MAX_LABEL: usize = 63;

/// Whether a migration's statements add enum values (`ALTER TYPE … ADD VALUE`), as a statement
/// or inside a `DO` block, a function body or a string (dynamic SQL): over-approximated, since
/// the cost of a wrong yes is one more commit in `migrate_all`.
pub fn adds_enum_values(stmts: &[Statement]) -> bool {
    stmts.iter().any(|s| text_adds_enum_values(&s.text, 0))
}

fn text_adds_enum_values(text: &str, nesting: usize) -> bool {
    let toks = spanned_tokens(text, usize::MAX);
    if toks.is_empty() && !text.trim().is_empty() {
        // Does not lex (a body in another language): read it word by word.
        let words: Vec<String> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_uppercase)
            .collect();
        return words.windows(2).any(|w| w[0] == "ALTER" && w[1] == "TYPE")
            && words.windows(2).any(|w| w[0] == "ADD" && w[1] == "VALUE");
    }
    let code_says = toks.iter().enumerate().any(|(i, t)| {
        t.tok.is_word("ALTER")
            && toks.get(i + 1).is_some_and(|n| n.tok.is_word("TYPE"))
            && toks[i + 2..]
                .iter()
                .take(12)
                .take_while(|x| !matches!(x.tok, Tok::Punct(b';')))
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0].tok.is_word("ADD") && w[1].tok.is_word("VALUE"))
    });
    code_says
        || (nesting < 4
            && literal_contents(text)
                .iter()
                .any(|inner| text_adds_enum_values(inner, nesting + 1)))
}

/// What to do with one statement of a one-transaction run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Run this text: the statement as written, or a `CREATE TYPE` with values folded in.
    Run(String),
    /// Skip it: an `ADD VALUE` whose value the `CREATE TYPE` of statement `create_statement` of
    /// migration `create_migration` (indexes into the run) already has.
    Folded {
        create_migration: usize,
        create_statement: usize,
    },
}

/// A type name as a migration writes it: in the tenant (unqualified or `@tenant@.name`: the
/// tenant comes first in the migration's `search_path`), or somewhere else.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TypeName {
    Tenant(String),
    Elsewhere,
}

/// Reads a (possibly qualified) type name at `toks[i..]`; returns it and the index after it.
fn type_name(toks: &[Spanned], i: usize) -> Option<(TypeName, usize)> {
    let ident = |t: &Spanned| match &t.tok {
        Tok::Word(w) => Some(w.to_ascii_lowercase()),
        Tok::Quoted(q) => Some(q.clone()),
        _ => None,
    };
    let dot = |j: usize| toks.get(j).is_some_and(|t| t.tok == Tok::Punct(b'.'));
    // @tenant@.name
    if toks.get(i).is_some_and(|t| t.tok == Tok::Punct(b'@'))
        && toks.get(i + 1).is_some_and(|t| t.tok.is_word("TENANT"))
        && toks.get(i + 2).is_some_and(|t| t.tok == Tok::Punct(b'@'))
        && dot(i + 3)
    {
        let name = ident(toks.get(i + 4)?)?;
        return Some((TypeName::Tenant(name), i + 5));
    }
    let first = ident(toks.get(i)?)?;
    if dot(i + 1) {
        ident(toks.get(i + 2)?)?;
        if dot(i + 3) {
            // database.schema.name
            ident(toks.get(i + 4)?)?;
            return Some((TypeName::Elsewhere, i + 5));
        }
        return Some((TypeName::Elsewhere, i + 3));
    }
    Some((TypeName::Tenant(first), i + 1))
}

/// A label: a plain string literal of at most 63 bytes, without backslashes (whose meaning
/// depends on `standard_conforming_strings`).
fn label(text: &str, t: &Spanned) -> Option<String> {
    if t.tok != Tok::Literal {
        return None;
    }
    let v = literal_value(&text[t.start..t.end])?;
    (!v.is_empty() && v.len() <= MAX_LABEL && !v.contains('\\')).then_some(v)
}

/// `CREATE TYPE name AS ENUM ('a', …)`: the name, its labels, and the byte range of the list's
/// inside (between the parentheses).
fn create_enum(s: &Statement) -> Option<(TypeName, Vec<String>, usize, usize)> {
    if s.words.first()? != "CREATE" || s.words.get(1)? != "TYPE" {
        return None;
    }
    let toks = spanned_tokens(&s.text, usize::MAX);
    let (name, mut i) = type_name(&toks, 2)?;
    if !toks.get(i)?.tok.is_word("AS") || !toks.get(i + 1)?.tok.is_word("ENUM") {
        return None;
    }
    i += 2;
    let open = toks.get(i)?;
    if open.tok != Tok::Punct(b'(') {
        return None;
    }
    let mut labels = Vec::new();
    i += 1;
    if toks.get(i)?.tok != Tok::Punct(b')') {
        loop {
            labels.push(label(&s.text, toks.get(i)?)?);
            i += 1;
            match toks.get(i)?.tok {
                Tok::Punct(b',') => i += 1,
                Tok::Punct(b')') => break,
                _ => return None,
            }
        }
    }
    let close = &toks[i];
    if i + 1 != toks.len() {
        return None;
    }
    Some((name, labels, open.end, close.start))
}

/// Where an added value goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    End,
    Before(String),
    After(String),
}

/// `ALTER TYPE name ADD VALUE [IF NOT EXISTS] 'v' [BEFORE | AFTER 'n']`.
struct AddValue {
    name: TypeName,
    value: String,
    if_not_exists: bool,
    place: Place,
}

fn add_value(s: &Statement) -> Option<AddValue> {
    if s.words.first()? != "ALTER" || s.words.get(1)? != "TYPE" {
        return None;
    }
    let toks = spanned_tokens(&s.text, usize::MAX);
    let (name, mut i) = type_name(&toks, 2)?;
    if !toks.get(i)?.tok.is_word("ADD") || !toks.get(i + 1)?.tok.is_word("VALUE") {
        return None;
    }
    i += 2;
    let if_not_exists = toks.get(i)?.tok.is_word("IF");
    if if_not_exists {
        if !toks.get(i + 1)?.tok.is_word("NOT") || !toks.get(i + 2)?.tok.is_word("EXISTS") {
            return None;
        }
        i += 3;
    }
    let value = label(&s.text, toks.get(i)?)?;
    i += 1;
    let place = match toks.get(i) {
        None => Place::End,
        Some(t) if t.tok.is_word("BEFORE") || t.tok.is_word("AFTER") => {
            let n = label(&s.text, toks.get(i + 1)?)?;
            if i + 2 != toks.len() {
                return None;
            }
            if t.tok.is_word("BEFORE") {
                Place::Before(n)
            } else {
                Place::After(n)
            }
        }
        Some(_) => return None,
    };
    Some(AddValue {
        name,
        value,
        if_not_exists,
        place,
    })
}

/// Whether a statement changes `search_path` (`SET [LOCAL] search_path`, `SET SCHEMA`, `RESET`,
/// `set_config('search_path', …)`): its migration's names may then resolve outside the tenant.
fn changes_search_path(s: &Statement) -> bool {
    let first = s.words.first().map(String::as_str);
    (matches!(first, Some("SET" | "RESET"))
        && (names_schema(&s.text, "search_path", Stored::Source)
            || s.words.iter().any(|w| w == "SCHEMA" || w == "ALL")))
        || (names_schema(&s.text, "set_config", Stored::Source)
            && s.text.to_ascii_lowercase().contains("search_path"))
}

/// Whether a statement could tell the folded values from the added ones for every type:
/// it lists enum values or drops whole schemas or roles' objects.
fn disturbs_every_type(s: &Statement) -> bool {
    let w = |i: usize| s.words.get(i).map(String::as_str).unwrap_or("");
    ["enum_range", "enum_first", "enum_last", "pg_enum"]
        .iter()
        .any(|f| names_schema(&s.text, f, Stored::Source))
        || (w(0) == "DROP" && (w(1) == "SCHEMA" || w(1) == "OWNED"))
        || (w(0) == "ALTER" && w(1) == "SCHEMA")
}

/// Whether a statement could tell the folded values of type `name` from the added ones, or change
/// the type: another `ALTER TYPE` of it, a `DROP` or a `DO` block naming it.
fn disturbs_type(s: &Statement, name: &str) -> bool {
    let w = |i: usize| s.words.get(i).map(String::as_str).unwrap_or("");
    match (w(0), w(1)) {
        ("ALTER", "TYPE") => {
            let toks = spanned_tokens(&s.text, 16);
            match type_name(&toks, 2) {
                Some((TypeName::Tenant(n), _)) => n == name,
                Some((TypeName::Elsewhere, _)) => false,
                None => true,
            }
        }
        ("DROP", _) | ("DO", _) => names_schema(&s.text, name, Stored::Source),
        _ => false,
    }
}

/// An enum type created in this run whose later `ADD VALUE`s can still be folded into its
/// `CREATE TYPE`.
struct Open {
    name: String,
    migration: usize,
    statement: usize,
    labels: Vec<String>,
    list: (usize, usize),
    folded: bool,
}

/// The steps of a run of migrations in one transaction (`run[m]` is migration `m`'s statements,
/// in order): every statement as written, except that plain `ADD VALUE`s of enum types created
/// earlier in the run are folded into their `CREATE TYPE` (see the module's documentation).
pub fn fold(run: &[Vec<Statement>]) -> Vec<Vec<Step>> {
    let mut steps: Vec<Vec<Step>> = run
        .iter()
        .map(|m| m.iter().map(|s| Step::Run(s.text.clone())).collect())
        .collect();
    let mut open: Vec<Open> = Vec::new();
    let mut done: Vec<Open> = Vec::new();
    for (mi, stmts) in run.iter().enumerate() {
        if stmts.iter().any(changes_search_path) {
            done.append(&mut open);
            continue;
        }
        for (si, s) in stmts.iter().enumerate() {
            if disturbs_every_type(s) {
                done.append(&mut open);
                continue;
            }
            if let Some((TypeName::Tenant(name), labels, start, end)) = create_enum(s) {
                // A type of the same name created again (after a DROP the rules above saw).
                if let Some(p) = open.iter().position(|o| o.name == name) {
                    done.push(open.remove(p));
                }
                open.push(Open {
                    name,
                    migration: mi,
                    statement: si,
                    labels,
                    list: (start, end),
                    folded: false,
                });
                continue;
            }
            if let Some(add) = add_value(s) {
                let TypeName::Tenant(name) = &add.name else {
                    continue;
                };
                let Some(p) = open.iter().position(|o| &o.name == name) else {
                    continue;
                };
                let o = &mut open[p];
                if o.labels.contains(&add.value) {
                    // Already there: with IF NOT EXISTS a no-op as written, and the type is
                    // unchanged; without, the error as written, and nothing more is folded.
                    if !add.if_not_exists {
                        done.push(open.remove(p));
                    }
                    continue;
                }
                let at = match &add.place {
                    Place::End => Some(o.labels.len()),
                    Place::Before(n) => o.labels.iter().position(|l| l == n),
                    Place::After(n) => o.labels.iter().position(|l| l == n).map(|i| i + 1),
                };
                match at {
                    Some(at) => {
                        o.labels.insert(at, add.value);
                        o.folded = true;
                        steps[mi][si] = Step::Folded {
                            create_migration: o.migration,
                            create_statement: o.statement,
                        };
                    }
                    // A neighbour this run did not see: run it as written (PostgreSQL decides),
                    // and fold nothing more into this type.
                    None => done.push(open.remove(p)),
                }
                continue;
            }
            let mut i = 0;
            while i < open.len() {
                if disturbs_type(s, &open[i].name) {
                    done.push(open.remove(i));
                } else {
                    i += 1;
                }
            }
        }
    }
    done.append(&mut open);
    for o in done.into_iter().filter(|o| o.folded) {
        let text = &run[o.migration][o.statement].text;
        let list: Vec<String> = o.labels.iter().map(|l| quote_literal(l)).collect();
        steps[o.migration][o.statement] = Step::Run(format!(
            "{}{}{}",
            &text[..o.list.0],
            list.join(", "),
            &text[o.list.1..]
        ));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::sqltext::split_statements;

    fn run_of(migrations: &[&str]) -> Vec<Vec<Statement>> {
        migrations
            .iter()
            .map(|m| split_statements(m).unwrap())
            .collect()
    }

    /// The steps as text: the statement to run, or `skip`.
    fn texts(migrations: &[&str]) -> Vec<Vec<String>> {
        fold(&run_of(migrations))
            .into_iter()
            .map(|m| {
                m.into_iter()
                    .map(|s| match s {
                        Step::Run(t) => t,
                        Step::Folded { .. } => "skip".into(),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn detects_migrations_that_add_enum_values() {
        let adds = |sql: &str| adds_enum_values(&split_statements(sql).unwrap());
        assert!(adds("ALTER TYPE status ADD VALUE 'x'"));
        assert!(adds(
            "alter type public.\"Status\" add value if not exists 'x' after 'y'"
        ));
        assert!(adds("ALTER TYPE @tenant@.status ADD VALUE 'x'"));
        assert!(adds("CREATE TABLE t (x int); ALTER TYPE s ADD VALUE 'x'"));
        assert!(adds("DO $$ BEGIN ALTER TYPE s ADD VALUE 'x'; END $$"));
        assert!(adds(
            "DO $$ BEGIN EXECUTE format('ALTER TYPE %I ADD VALUE %L', 's', 'x'); END $$"
        ));
        assert!(adds(
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN EXECUTE 'ALTER TYPE s ADD VALUE ''x'''; END $f$"
        ));
        assert!(!adds("CREATE TYPE s AS ENUM ('a', 'b')"));
        assert!(!adds("ALTER TYPE s RENAME VALUE 'a' TO 'b'"));
        assert!(!adds("ALTER TABLE t ADD COLUMN value int"));
        assert!(!adds("-- ALTER TYPE s ADD VALUE 'x'\nSELECT 1"));
        assert!(!adds("ALTER TYPE s OWNER TO app; SELECT 'add value'"));
    }

    #[test]
    fn folds_added_values_into_the_create_type_of_the_same_run() {
        assert_eq!(
            texts(&[
                "CREATE TYPE status AS ENUM ('open', 'done')",
                "ALTER TYPE status ADD VALUE 'waiting' BEFORE 'done'; ALTER TYPE status ADD VALUE 'gone'",
                "ALTER TYPE Status ADD VALUE IF NOT EXISTS 'new' AFTER 'open'",
                "CREATE TABLE t (s status DEFAULT 'waiting')",
            ]),
            vec![
                vec!["CREATE TYPE status AS ENUM ('open', 'new', 'waiting', 'done', 'gone')"],
                vec!["skip", "skip"],
                vec!["skip"],
                vec!["CREATE TABLE t (s status DEFAULT 'waiting')"],
            ]
        );
        // Quoted names, @tenant@, labels with quotes, an empty list, dollar-quoted labels.
        assert_eq!(
            texts(&[
                "CREATE TYPE @tenant@.\"Mood\" AS ENUM ()",
                "ALTER TYPE \"Mood\" ADD VALUE 'it''s'; ALTER TYPE @tenant@.\"Mood\" ADD VALUE $$ok$$ BEFORE 'it''s'",
            ]),
            vec![
                vec!["CREATE TYPE @tenant@.\"Mood\" AS ENUM ('ok', 'it''s')"],
                vec!["skip", "skip"],
            ]
        );
    }

    #[test]
    fn folds_only_what_it_can_prove_the_same() {
        let unchanged = |migrations: &[&str]| {
            let want: Vec<Vec<String>> = run_of(migrations)
                .into_iter()
                .map(|m| m.into_iter().map(|s| s.text).collect())
                .collect();
            assert_eq!(texts(migrations), want, "{migrations:?}");
        };
        // The type was not created in this run.
        unchanged(&["ALTER TYPE status ADD VALUE 'x'", "SELECT 'x'::status"]);
        // Another schema's type of the same name.
        unchanged(&[
            "CREATE TYPE status AS ENUM ('a')",
            "ALTER TYPE public.status ADD VALUE 'x'",
        ]);
        // A statement that lists the values in between.
        unchanged(&[
            "CREATE TYPE status AS ENUM ('a')",
            "INSERT INTO lookup SELECT unnest(enum_range(NULL::status))",
            "ALTER TYPE status ADD VALUE 'x'",
        ]);
        // A DO block naming the type, a rename, a drop, another ALTER TYPE.
        for between in [
            "DO $$ BEGIN PERFORM 1 FROM pg_type WHERE typname = 'status'; END $$",
            "ALTER TYPE status RENAME VALUE 'a' TO 'b'",
            "ALTER TYPE status RENAME TO state",
            "DROP TYPE IF EXISTS status CASCADE",
            "DROP SCHEMA elsewhere CASCADE",
        ] {
            unchanged(&[
                "CREATE TYPE status AS ENUM ('a', 'b')",
                between,
                "ALTER TYPE status ADD VALUE 'x' AFTER 'a'",
            ]);
        }
        // A migration that changes search_path.
        unchanged(&[
            "CREATE TYPE status AS ENUM ('a')",
            "SET LOCAL search_path = public; ALTER TYPE status ADD VALUE 'x'",
        ]);
        unchanged(&[
            "SELECT set_config('search_path', 'public', true); CREATE TYPE status AS ENUM ('a')",
            "ALTER TYPE status ADD VALUE 'x'",
        ]);
        // A neighbour it has not seen, a value already there, labels it does not decode.
        unchanged(&[
            "CREATE TYPE status AS ENUM ('a')",
            "ALTER TYPE status ADD VALUE 'x' BEFORE 'zz'",
        ]);
        unchanged(&[
            "CREATE TYPE status AS ENUM ('a')",
            "ALTER TYPE status ADD VALUE 'a'",
        ]);
        unchanged(&[
            "CREATE TYPE status AS ENUM (E'a\\\\b')",
            "ALTER TYPE status ADD VALUE 'x'",
        ]);
        unchanged(&[
            "CREATE TYPE status AS ENUM ('a')",
            "ALTER TYPE status ADD VALUE 'back\\slash'",
        ]);
        // Not an enum, or an enum built some other way.
        unchanged(&[
            "CREATE TYPE pair AS (a int, b int)",
            "ALTER TYPE pair ADD ATTRIBUTE c int",
        ]);
    }

    #[test]
    fn a_type_created_again_starts_over_and_stops_folding_into_the_old_one() {
        assert_eq!(
            texts(&[
                "CREATE TYPE s AS ENUM ('a'); ALTER TYPE s ADD VALUE 'b'",
                "DROP TYPE s",
                "CREATE TYPE s AS ENUM ('x')",
                "ALTER TYPE s ADD VALUE 'y'",
            ]),
            vec![
                vec!["CREATE TYPE s AS ENUM ('a', 'b')", "skip"],
                vec!["DROP TYPE s"],
                vec!["CREATE TYPE s AS ENUM ('x', 'y')"],
                vec!["skip"],
            ]
        );
    }

    #[test]
    fn a_value_already_there() {
        // IF NOT EXISTS of a value already there runs as written (a no-op) and folding goes on;
        // without IF NOT EXISTS it fails as written, and nothing after it is folded.
        assert_eq!(
            texts(&[
                "CREATE TYPE s AS ENUM ('a')",
                "ALTER TYPE s ADD VALUE IF NOT EXISTS 'a'",
                "ALTER TYPE s ADD VALUE 'b'",
                "ALTER TYPE s ADD VALUE 'b'",
                "ALTER TYPE s ADD VALUE 'c'",
            ]),
            vec![
                vec!["CREATE TYPE s AS ENUM ('a', 'b')"],
                vec!["ALTER TYPE s ADD VALUE IF NOT EXISTS 'a'"],
                vec!["skip"],
                vec!["ALTER TYPE s ADD VALUE 'b'"],
                vec!["ALTER TYPE s ADD VALUE 'c'"],
            ]
        );
    }
}
