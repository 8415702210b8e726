//! A small SQL lexer, just enough to treat migration text safely: find statement boundaries,
//! recognise statements that cannot run inside a transaction block, and substitute `@tenant@`
//! according to where it stands (code, string literal, dollar-quoted body).
//!
//! Pure: no pgrx. Used by `build.rs` (to reject bad embedded migrations at build time) and at run
//! time (to reject registered migrations, to run a migration statement by statement, and to name
//! the failing statement).

use crate::rules::error::{Result, SqlState, TenancyError};
use crate::rules::names::quote_ident;

/// The placeholder replaced by the quoted tenant name.
pub const TENANT_TOKEN: &str = "@tenant@";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Code,
    Comment,
    /// `'…'`; `escape` for `E'…'` (backslash escapes).
    Single {
        escape: bool,
    },
    /// `"…"`
    Double,
    /// `$tag$…$tag$`; `tag_len` is the length of the delimiter including both `$`.
    Dollar {
        tag_len: usize,
    },
}

#[derive(Clone, Copy, Debug)]
struct Region {
    kind: Kind,
    start: usize,
    end: usize,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

fn unterminated(what: &str, at: usize) -> TenancyError {
    TenancyError::new(
        SqlState::SyntaxError,
        format!("unterminated {what} starting at byte {at}"),
    )
    .hint("Close the quote or comment; pg_tenancy splits migrations into statements before running them.")
}

/// Splits `sql` into regions of code, comments, and quoted text. Fails on an unterminated quote or
/// comment.
fn scan(sql: &str) -> Result<Vec<Region>> {
    let b = sql.as_bytes();
    let mut regions: Vec<Region> = Vec::new();
    let mut code_start = 0;
    let mut i = 0;
    let push = |regions: &mut Vec<Region>, kind, start, end| {
        if end > start {
            regions.push(Region { kind, start, end });
        }
    };
    while i < b.len() {
        let c = b[i];
        let prev_ident = i > 0 && is_ident_char(b[i - 1]);
        let (kind, end) = if c == b'-' && b.get(i + 1) == Some(&b'-') {
            let end = b[i..]
                .iter()
                .position(|&x| x == b'\n')
                .map_or(b.len(), |p| i + p + 1);
            (Kind::Comment, end)
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 1;
            let mut j = i + 2;
            while depth > 0 {
                if j + 1 >= b.len() {
                    return Err(unterminated("block comment", i));
                }
                if b[j] == b'/' && b[j + 1] == b'*' {
                    depth += 1;
                    j += 2;
                } else if b[j] == b'*' && b[j + 1] == b'/' {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            (Kind::Comment, j)
        } else if c == b'\'' {
            // E'…' when the quote follows a lone E/e (not the end of a longer identifier).
            let escape = i > 0
                && (b[i - 1] == b'E' || b[i - 1] == b'e')
                && (i < 2 || !is_ident_char(b[i - 2]));
            let mut j = i + 1;
            loop {
                match b.get(j) {
                    None => return Err(unterminated("string literal", i)),
                    Some(b'\\') if escape => j += 2,
                    Some(b'\'') if b.get(j + 1) == Some(&b'\'') => j += 2,
                    Some(b'\'') => break,
                    Some(_) => j += 1,
                }
            }
            (Kind::Single { escape }, j + 1)
        } else if c == b'"' {
            let mut j = i + 1;
            loop {
                match b.get(j) {
                    None => return Err(unterminated("quoted identifier", i)),
                    Some(b'"') if b.get(j + 1) == Some(&b'"') => j += 2,
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            (Kind::Double, j + 1)
        } else if c == b'$' && !prev_ident {
            // $tag$ where tag is empty or an identifier not starting with a digit ($1 is a parameter).
            let mut j = i + 1;
            if j < b.len() && is_ident_start(b[j]) {
                while j < b.len() && is_ident_char(b[j]) && b[j] != b'$' {
                    j += 1;
                }
            }
            if b.get(j) == Some(&b'$') {
                let tag = &sql[i..=j];
                match sql[j + 1..].find(tag) {
                    Some(p) => (Kind::Dollar { tag_len: tag.len() }, j + 1 + p + tag.len()),
                    None => return Err(unterminated("dollar-quoted string", i)),
                }
            } else {
                i += 1;
                continue;
            }
        } else {
            i += 1;
            continue;
        };
        // A quoted string's E prefix belongs to the literal.
        let start = if let Kind::Single { escape: true } = kind {
            i - 1
        } else {
            i
        };
        push(&mut regions, Kind::Code, code_start, start);
        push(&mut regions, kind, start, end);
        i = end;
        code_start = end;
    }
    push(&mut regions, Kind::Code, code_start, b.len());
    Ok(regions)
}

/// One statement of a migration: its text (without the closing `;`) and its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    /// 1-based position among the migration's statements.
    pub number: usize,
    /// Upper-cased leading keywords (code only), at most 8.
    pub words: Vec<String>,
}

/// Splits migration text into statements at top-level `;` (not inside quotes, comments, or a
/// `BEGIN ATOMIC … END` function body). Empty and comment-only statements are dropped.
pub fn split_statements(sql: &str) -> Result<Vec<Statement>> {
    let regions = scan(sql)?;
    let b = sql.as_bytes();
    let mut out: Vec<Statement> = Vec::new();
    // Where the current statement's first code (not comment) starts, once it has any.
    let mut start: Option<usize> = None;
    let mut words: Vec<String> = Vec::new();
    let mut atomic_depth = 0usize;
    let is_routine = |w: &[String]| {
        w.first().is_some_and(|x| x == "CREATE")
            && w.iter()
                .take(4)
                .any(|x| x == "FUNCTION" || x == "PROCEDURE")
    };
    let mut finish = |start: &mut Option<usize>, end: usize, words: &mut Vec<String>| {
        if let Some(s) = start.take() {
            out.push(Statement {
                text: sql[s..end].trim().to_string(),
                number: out.len() + 1,
                words: std::mem::take(words),
            });
        }
        words.clear();
    };
    for r in &regions {
        if r.kind != Kind::Code {
            if r.kind != Kind::Comment {
                start.get_or_insert(r.start);
            }
            continue;
        }
        let mut i = r.start;
        while i < r.end {
            let c = b[i];
            if is_ident_start(c) {
                let ws = i;
                start.get_or_insert(ws);
                while i < r.end && is_ident_char(b[i]) {
                    i += 1;
                }
                let w = sql[ws..i].to_ascii_uppercase();
                if is_routine(&words) {
                    match w.as_str() {
                        "BEGIN" => atomic_depth += 1,
                        "CASE" if atomic_depth > 0 => atomic_depth += 1,
                        "END" if atomic_depth > 0 => atomic_depth -= 1,
                        _ => {}
                    }
                }
                if words.len() < 8 {
                    words.push(w);
                }
                continue;
            }
            if c == b';' && atomic_depth == 0 {
                finish(&mut start, i, &mut words);
            } else if !c.is_ascii_whitespace() {
                start.get_or_insert(i);
            }
            i += 1;
        }
    }
    finish(&mut start, sql.len(), &mut words);
    Ok(out)
}

/// Why a statement cannot run inside a transaction block, if it cannot.
pub fn non_transactional(stmt: &Statement) -> Option<&'static str> {
    let w: Vec<&str> = stmt.words.iter().map(String::as_str).collect();
    let at = |i: usize| w.get(i).copied().unwrap_or("");
    let has = |x: &str| w.contains(&x);
    match (at(0), at(1), at(2)) {
        ("VACUUM", _, _) => Some("VACUUM"),
        ("CREATE", "INDEX", "CONCURRENTLY") => Some("CREATE INDEX CONCURRENTLY"),
        ("CREATE", "UNIQUE", "INDEX") if at(3) == "CONCURRENTLY" => {
            Some("CREATE INDEX CONCURRENTLY")
        }
        ("DROP", "INDEX", "CONCURRENTLY") => Some("DROP INDEX CONCURRENTLY"),
        ("REINDEX", _, _) if has("CONCURRENTLY") => Some("REINDEX CONCURRENTLY"),
        ("REINDEX", "SYSTEM" | "DATABASE", _) => Some("REINDEX SYSTEM/DATABASE"),
        ("CREATE" | "DROP", "DATABASE", _) => Some("CREATE/DROP DATABASE"),
        ("CREATE" | "DROP", "TABLESPACE", _) => Some("CREATE/DROP TABLESPACE"),
        ("CREATE" | "DROP", "SUBSCRIPTION", _) => Some("CREATE/DROP SUBSCRIPTION"),
        ("ALTER", "SYSTEM", _) => Some("ALTER SYSTEM"),
        ("ALTER", "TABLE", _) if has("DETACH") && has("CONCURRENTLY") => {
            Some("ALTER TABLE … DETACH PARTITION … CONCURRENTLY")
        }
        ("CLUSTER", "", _) | ("CLUSTER", "VERBOSE", "") => Some("CLUSTER without a table"),
        ("DISCARD", "ALL", _) => Some("DISCARD ALL"),
        ("PREPARE" | "COMMIT" | "ROLLBACK", "TRANSACTION" | "PREPARED", _) => {
            Some("two-phase commit")
        }
        (
            "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE",
            _,
            _,
        ) => Some(
            "transaction control (pg_tenancy runs each tenant's migrations in one transaction)",
        ),
        _ => None,
    }
}

/// Abbreviates a statement for an error message.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() <= MAX {
        return one_line;
    }
    let mut cut = MAX;
    while !one_line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &one_line[..cut])
}

/// Checks migration text when it is loaded (at build time for embedded migrations, in
/// `add_migration` for registered ones): it must lex, contain at least one statement, and every
/// statement must be able to run inside a transaction block.
pub fn check_migration(label: &str, sql: &str) -> Result<Vec<Statement>> {
    let stmts = split_statements(sql).map_err(|e| TenancyError {
        message: format!("migration {label}: {}", e.message),
        ..e
    })?;
    if stmts.is_empty() {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            format!("migration {label} contains no SQL statement"),
        )
        .hint("A tenant migration must contain at least one statement."));
    }
    for s in &stmts {
        if let Some(why) = non_transactional(s) {
            return Err(TenancyError::new(
                SqlState::ActiveSqlTransaction,
                format!(
                    "migration {label}: statement {} cannot run inside a transaction block ({why})",
                    s.number
                ),
            )
            .detail(format!("statement: {}", excerpt(&s.text)))
            .hint("pg_tenancy applies each tenant's migrations inside one transaction; use the transactional form (for example CREATE INDEX without CONCURRENTLY) or run this statement outside tenant migrations."));
        }
    }
    Ok(stmts)
}

/// Replaces `@tenant@` with the tenant's quoted identifier, according to context:
/// in code it becomes `"name"`; inside a string literal the same text with the literal's quoting
/// applied (`'` doubled, and `\` doubled in `E''`), so the literal holds the quoted identifier;
/// inside a dollar-quoted body (function bodies) the body is treated as SQL recursively. In comments
/// and quoted identifiers it is left alone. The result can never end a quote early: when the name
/// contains a body's own `$tag$`, the body is re-quoted with a tag it does not contain.
pub fn substitute_tenant(sql: &str, tenant: &str) -> Result<String> {
    if !sql.contains(TENANT_TOKEN) {
        return Ok(sql.to_string());
    }
    let ident = quote_ident(tenant);
    let regions = scan(sql)?;
    let mut out = String::with_capacity(sql.len() + 64);
    for r in regions {
        let text = &sql[r.start..r.end];
        match r.kind {
            Kind::Code => out.push_str(&text.replace(TENANT_TOKEN, &ident)),
            Kind::Comment | Kind::Double => out.push_str(text),
            Kind::Single { escape } => {
                let mut inner = ident.replace('\'', "''");
                if escape {
                    inner = inner.replace('\\', "\\\\");
                }
                out.push_str(&text.replace(TENANT_TOKEN, &inner));
            }
            Kind::Dollar { tag_len } => {
                let tag = &text[..tag_len];
                let body = &text[tag_len..text.len() - tag_len];
                let new_body = match substitute_tenant(body, tenant) {
                    Ok(s) => s,
                    // A body that is not SQL (another language): plain substitution.
                    Err(_) => body.replace(TENANT_TOKEN, &ident),
                };
                // The name may contain the body's own delimiter: pick a tag the body does not
                // contain (the tag of a dollar quote carries no meaning).
                let mut tag = tag.to_string();
                let mut n = 0;
                while new_body.contains(&tag) {
                    n += 1;
                    tag = format!("$tenancy{n}$");
                }
                out.push_str(&tag);
                out.push_str(&new_body);
                out.push_str(&tag);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split_statements(sql)
            .unwrap()
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "CREATE TABLE a (x text default ';');\n-- c; c\nCREATE TABLE \"b;\" (y int); /* ; /* ; */ */ SELECT $$;$$, $f$ ; $f$;";
        assert_eq!(
            texts(sql),
            vec![
                "CREATE TABLE a (x text default ';')",
                "CREATE TABLE \"b;\" (y int)",
                "SELECT $$;$$, $f$ ; $f$"
            ]
        );
    }

    #[test]
    fn drops_empty_and_comment_only_statements() {
        assert_eq!(texts(";;  -- nothing\n; /* x */"), Vec::<String>::new());
        assert_eq!(texts("select 1"), vec!["select 1"]);
    }

    #[test]
    fn escape_strings_and_parameters() {
        assert_eq!(
            texts(r"SELECT E'it\'s;'; SELECT $1"),
            vec![r"SELECT E'it\'s;'", "SELECT $1"]
        );
        // a$b$ is an identifier, not a dollar quote
        assert_eq!(
            texts("SELECT a$b$ ; SELECT 2"),
            vec!["SELECT a$b$", "SELECT 2"]
        );
    }

    #[test]
    fn begin_atomic_bodies_stay_whole() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END; SELECT 3";
        let t = texts(sql);
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(t[0].ends_with("SELECT 2; END"));
    }

    #[test]
    fn unterminated_text_is_a_syntax_error() {
        for bad in [
            "SELECT 'x",
            "SELECT \"x",
            "SELECT $$x",
            "/* x",
            "SELECT $a$ x $b$",
        ] {
            assert_eq!(
                split_statements(bad).unwrap_err().state,
                SqlState::SyntaxError,
                "{bad}"
            );
        }
    }

    #[test]
    fn non_transactional_statements_are_found() {
        for bad in [
            "CREATE INDEX CONCURRENTLY i ON t (x)",
            "create unique index concurrently i on t (x)",
            "DROP INDEX CONCURRENTLY i",
            "VACUUM t",
            "REINDEX (VERBOSE) TABLE CONCURRENTLY t",
            "REINDEX DATABASE d",
            "CREATE DATABASE d",
            "ALTER SYSTEM SET work_mem = '1MB'",
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "CLUSTER",
            "COMMIT",
            "BEGIN",
            "PREPARE TRANSACTION 'x'",
        ] {
            let e = check_migration("0001_x", &format!("CREATE TABLE ok (x int);\n{bad};"))
                .unwrap_err();
            assert_eq!(e.state, SqlState::ActiveSqlTransaction, "{bad}");
            assert!(
                e.message.contains("0001_x") && e.message.contains("statement 2"),
                "{}",
                e.message
            );
            assert!(e.hint.is_some());
        }
        for ok in [
            "CREATE INDEX i ON t (x)",
            "CREATE INDEX concurrently_named ON t (x)",
            "CLUSTER t USING i",
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$",
            "SELECT 'VACUUM'",
            "PREPARE q AS SELECT 1",
        ] {
            assert!(check_migration("0001_x", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn empty_migration_is_refused() {
        assert_eq!(
            check_migration("0001_x", "-- nothing").unwrap_err().state,
            SqlState::InvalidParameterValue
        );
    }

    #[test]
    fn substitution_in_code_and_function_bodies() {
        let sql = "CREATE VIEW @tenant@.v AS SELECT 1; CREATE FUNCTION f() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM @tenant@.users $$; -- @tenant@\nSELECT \"@tenant@\"";
        let out = substitute_tenant(sql, "org_1").unwrap();
        assert_eq!(
            out,
            "CREATE VIEW \"org_1\".v AS SELECT 1; CREATE FUNCTION f() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM \"org_1\".users $$; -- @tenant@\nSELECT \"@tenant@\""
        );
    }

    #[test]
    fn hostile_names_stay_inside_their_quotes() {
        let name = "a'\"; drop schema public cascade; --$$";
        let sql = "SELECT 1 FROM @tenant@.t; SELECT '@tenant@'; SELECT E'@tenant@'; CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $b$ BEGIN RETURN '@tenant@'; END $b$";
        let out = substitute_tenant(sql, name).unwrap();
        // The substituted text has exactly the statements the template had.
        let stmts = split_statements(&out).unwrap();
        assert_eq!(stmts.len(), 4, "{out}");
        assert!(
            stmts.iter().all(|s| !s.words.contains(&"DROP".to_string())),
            "{out}"
        );
        assert!(
            out.contains("'\"a''\"\"; drop schema public cascade; --$$\"'"),
            "{out}"
        );
        // A name that contains the body's own tag gets the body re-quoted with another tag.
        let out = substitute_tenant("SELECT $$ @tenant@ $$; SELECT 2", name).unwrap();
        assert_eq!(split_statements(&out).unwrap().len(), 2, "{out}");
        assert!(out.starts_with("SELECT $tenancy1$ \"a'\"\"; drop"), "{out}");
    }

    #[test]
    fn text_without_token_is_untouched() {
        assert_eq!(
            substitute_tenant("SELECT 'unterminated", "x").unwrap(),
            "SELECT 'unterminated"
        );
    }

    #[test]
    fn excerpt_is_short_and_single_line() {
        assert_eq!(excerpt("a\n  b"), "a b");
        assert!(excerpt(&"é".repeat(300)).chars().count() <= 201);
    }
}
