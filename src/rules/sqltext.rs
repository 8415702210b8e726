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
        ) => Some(TRANSACTION_CONTROL),
        _ => None,
    }
}

/// What [`non_transactional`] says of `COMMIT`, `SAVEPOINT` etc. at the top level.
const TRANSACTION_CONTROL: &str =
    "transaction control (pg_tenancy runs each tenant's migrations in one transaction)";

const TRANSACTION_CONTROL_HINT: &str = "A tenant's pending migrations run in one transaction that pg_tenancy commits or rolls back as a whole, and PostgreSQL refuses COMMIT, ROLLBACK and savepoint commands inside it. Remove the statement. For a step that may fail, use a BEGIN … EXCEPTION block in a DO body (a subtransaction); work that must commit in batches belongs outside tenant migrations.";

/// The text of a string literal or dollar-quoted region, unquoted (`''` undoubled; in `E''`
/// also `\'` and `\\`).
fn literal_text(sql: &str, r: &Region) -> String {
    match r.kind {
        Kind::Dollar { tag_len } => sql[r.start + tag_len..r.end - tag_len].to_string(),
        Kind::Single { escape } => {
            let inner = &sql[r.start + if escape { 2 } else { 1 }..r.end - 1];
            let inner = inner.replace("''", "'");
            if escape {
                inner.replace("\\'", "'").replace("\\\\", "\\")
            } else {
                inner
            }
        }
        _ => String::new(),
    }
}

/// Transaction control inside a PL/pgSQL `DO` body (`DO $$ BEGIN COMMIT; END $$`), which
/// PostgreSQL refuses only when the migration runs (2D000 invalid transaction termination, or
/// 0A000 for savepoints): the form found, e.g. `COMMIT`. What the lexer cannot see is not
/// refused here and fails when applied: a `CALL` of a procedure that commits, `EXECUTE 'COMMIT'`,
/// a `DO` nested in a `DO` body. A `DO` in another language is not looked into.
pub fn transaction_control_in_do(stmt: &Statement) -> Option<&'static str> {
    if stmt.words.first().map(String::as_str) != Some("DO") {
        return None;
    }
    let text = &stmt.text;
    let regions = scan(text).ok()?;
    let b = text.as_bytes();
    // DO [LANGUAGE lang] code [LANGUAGE lang]: the language is a word, a quoted identifier or
    // a string; the code is the other string.
    let mut language: Option<String> = None;
    let mut body: Option<String> = None;
    let mut after_language = false;
    for r in &regions {
        match r.kind {
            Kind::Comment => {}
            Kind::Code => {
                let mut i = r.start;
                while i < r.end {
                    if is_ident_start(b[i]) {
                        let ws = i;
                        while i < r.end && is_ident_char(b[i]) {
                            i += 1;
                        }
                        let w = text[ws..i].to_ascii_lowercase();
                        if after_language {
                            language = Some(w);
                            after_language = false;
                        } else if w == "language" {
                            after_language = true;
                        }
                        continue;
                    }
                    i += 1;
                }
            }
            Kind::Double => {
                if after_language {
                    language = Some(text[r.start + 1..r.end - 1].replace("\"\"", "\""));
                    after_language = false;
                }
            }
            Kind::Single { .. } | Kind::Dollar { .. } => {
                let content = literal_text(text, r);
                if after_language {
                    language = Some(content.to_ascii_lowercase());
                    after_language = false;
                } else if body.is_none() {
                    body = Some(content);
                }
            }
        }
    }
    if language.is_some_and(|l| l != "plpgsql") {
        return None;
    }
    plpgsql_transaction_control(&body?)
}

/// The first transaction control statement of a PL/pgSQL body, by its form. A statement starts
/// at the beginning, after `;`, after a `<<label>>`, and after `BEGIN`, `THEN`, `ELSE` and
/// `LOOP`; declarations (`DECLARE` … `BEGIN`) are variables, not statements. Only the complete
/// command counts (`COMMIT;`, `COMMIT AND CHAIN`), so a variable or column named `commit` does not.
fn plpgsql_transaction_control(body: &str) -> Option<&'static str> {
    let t = tokens(body, usize::MAX);
    let tok = |i: usize| t.get(i).map(|(x, _)| x);
    let ends = |i: usize| matches!(tok(i), None | Some(Tok::Punct(b';')));
    let is = |i: usize, w: &str| tok(i).is_some_and(|x| x.is_word(w));
    let name = |i: usize| matches!(tok(i), Some(Tok::Word(_) | Tok::Quoted(_)));
    let mut in_declare = false;
    let mut at_start = true;
    for (i, (x, depth)) in t.iter().enumerate() {
        let starts = std::mem::replace(&mut at_start, false) && *depth == 0;
        match x {
            Tok::Word(w) => match w.as_str() {
                "DECLARE" => in_declare = true,
                "BEGIN" => {
                    in_declare = false;
                    at_start = true;
                }
                "THEN" | "ELSE" | "LOOP" => at_start = true,
                _ if !starts || in_declare => {}
                "COMMIT" if ends(i + 1) || is(i + 1, "AND") => return Some("COMMIT"),
                "ROLLBACK" if ends(i + 1) || is(i + 1, "AND") || is(i + 1, "TO") => {
                    return Some("ROLLBACK")
                }
                "ABORT" if ends(i + 1) => return Some("ABORT"),
                "SAVEPOINT" if name(i + 1) && ends(i + 2) => return Some("SAVEPOINT"),
                "RELEASE"
                    if (name(i + 1) && ends(i + 2))
                        || (is(i + 1, "SAVEPOINT") && name(i + 2) && ends(i + 3)) =>
                {
                    return Some("RELEASE SAVEPOINT")
                }
                "START" if is(i + 1, "TRANSACTION") => return Some("START TRANSACTION"),
                _ => {}
            },
            Tok::Punct(b';') => at_start = true,
            Tok::Punct(b'>') if i > 0 && tok(i - 1) == Some(&Tok::Punct(b'>')) => at_start = true,
            _ => {}
        }
    }
    None
}

/// A token of a statement's code, for the checks that need more than its leading words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// An unquoted word, upper-cased.
    Word(String),
    /// A quoted identifier's name (`""` undoubled), as written.
    Quoted(String),
    /// A string literal or a dollar-quoted body (a function body is never looked into).
    Literal,
    /// Any other character outside whitespace: `(`, `)`, `.`, `=`, digits, operators.
    Punct(u8),
}

impl Tok {
    pub fn is_word(&self, w: &str) -> bool {
        matches!(self, Tok::Word(x) if x == w)
    }

    /// The name a setting is written as (`search_path`, `"search_path"`), upper-cased: setting
    /// names are case-insensitive even when quoted.
    fn setting_name(&self) -> Option<String> {
        match self {
            Tok::Word(w) => Some(w.clone()),
            Tok::Quoted(q) => Some(q.to_ascii_uppercase()),
            _ => None,
        }
    }
}

/// The code tokens of one statement (comments skipped), at most `limit`, each with its depth of
/// parentheses. The text is a statement [`split_statements`] returned, so it lexes; if it did not,
/// there are no tokens (nothing is refused on a guess).
fn tokens(text: &str, limit: usize) -> Vec<(Tok, usize)> {
    spanned_tokens(text, limit)
        .into_iter()
        .map(|t| (t.tok, t.depth))
        .collect()
}

/// A token with its depth of parentheses and where it stands in the text (`start..end`, bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned {
    pub tok: Tok,
    pub depth: usize,
    pub start: usize,
    pub end: usize,
}

/// The table a `CREATE [UNLOGGED | TEMP …] TABLE [IF NOT EXISTS] name` statement creates, as
/// written (`labels`, `"Odd".t`), for error messages; `None` for any other statement.
pub fn created_table(text: &str) -> Option<String> {
    let toks = spanned_tokens(text, 16);
    let mut i = 0;
    if !toks.first()?.tok.is_word("CREATE") {
        return None;
    }
    i += 1;
    while toks.get(i).is_some_and(|t| {
        ["GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED"]
            .iter()
            .any(|w| t.tok.is_word(w))
    }) {
        i += 1;
    }
    if !toks.get(i)?.tok.is_word("TABLE") {
        return None;
    }
    i += 1;
    if toks.get(i).is_some_and(|t| t.tok.is_word("IF")) {
        i += 3; // IF NOT EXISTS
    }
    let start = toks.get(i)?;
    if !matches!(start.tok, Tok::Word(_) | Tok::Quoted(_)) {
        return None;
    }
    let mut end = start.end;
    let mut j = i + 1;
    while toks.get(j).is_some_and(|t| t.tok == Tok::Punct(b'.'))
        && toks
            .get(j + 1)
            .is_some_and(|t| matches!(t.tok, Tok::Word(_) | Tok::Quoted(_)))
    {
        end = toks[j + 1].end;
        j += 2;
    }
    Some(text[start.start..end].to_string())
}

/// [`tokens`] with each token's place in `text`, for rules that rewrite a statement.
pub fn spanned_tokens(text: &str, limit: usize) -> Vec<Spanned> {
    let Ok(regions) = scan(text) else {
        return Vec::new();
    };
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let push = |out: &mut Vec<Spanned>, tok, depth, start, end| {
        out.push(Spanned {
            tok,
            depth,
            start,
            end,
        })
    };
    for r in regions {
        if out.len() >= limit {
            break;
        }
        match r.kind {
            Kind::Comment => continue,
            Kind::Single { .. } | Kind::Dollar { .. } => {
                push(&mut out, Tok::Literal, depth, r.start, r.end);
                continue;
            }
            Kind::Double => {
                let name = text[r.start + 1..r.end - 1].replace("\"\"", "\"");
                push(&mut out, Tok::Quoted(name), depth, r.start, r.end);
                continue;
            }
            Kind::Code => {}
        }
        let mut i = r.start;
        while i < r.end && out.len() < limit {
            let c = b[i];
            if is_ident_start(c) {
                let ws = i;
                while i < r.end && is_ident_char(b[i]) {
                    i += 1;
                }
                let word = Tok::Word(text[ws..i].to_ascii_uppercase());
                push(&mut out, word, depth, ws, i);
                continue;
            }
            match c {
                b'(' => {
                    push(&mut out, Tok::Punct(c), depth, i, i + 1);
                    depth += 1;
                }
                b')' => {
                    depth = depth.saturating_sub(1);
                    push(&mut out, Tok::Punct(c), depth, i, i + 1);
                }
                _ if c.is_ascii_whitespace() => {}
                _ => push(&mut out, Tok::Punct(c), depth, i, i + 1),
            }
            i += 1;
        }
    }
    out
}

/// The value of a literal token's text (`raw` is what [`spanned_tokens`] spans): a standard
/// string `'…'` (`''` undoubled) or a dollar-quoted one. `None` for an escape string `E'…'`
/// (backslash rules this lexer does not decode) and for anything else.
pub fn literal_value(raw: &str) -> Option<String> {
    if raw.len() >= 2 && raw.starts_with('\'') && raw.ends_with('\'') {
        return Some(raw[1..raw.len() - 1].replace("''", "'"));
    }
    if let Some(rest) = raw.strip_prefix('$') {
        let tag_len = rest.find('$')? + 2;
        if raw.len() >= 2 * tag_len && raw.ends_with(&raw[..tag_len]) {
            return Some(raw[tag_len..raw.len() - tag_len].to_string());
        }
    }
    None
}

/// The text inside each string literal and dollar-quoted body of `text` (escape strings as
/// written, undecoded), for rules that look into `DO` and function bodies.
pub fn literal_contents(text: &str) -> Vec<String> {
    spanned_tokens(text, usize::MAX)
        .into_iter()
        .filter(|t| t.tok == Tok::Literal)
        .map(|t| {
            let raw = &text[t.start..t.end];
            literal_value(raw).unwrap_or_else(|| {
                let body = raw.strip_prefix(['E', 'e']).unwrap_or(raw);
                body.trim_matches('\'').to_string()
            })
        })
        .collect()
}

/// Why a statement that could run inside a transaction block is still refused in a tenant
/// migration: it would change identity, leave the tenant's `search_path`, need a client
/// connection, or create session state that outlives the migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub state: SqlState,
    /// The statement's form, as the message names it (`SET ROLE`).
    pub form: &'static str,
    /// Why it is refused and what to write instead.
    pub hint: &'static str,
}

const IDENTITY_HINT: &str = "A tenant migration runs as the tenant schema's owner, inside a security-restricted operation, and cannot change identity; objects it creates belong to that owner. Remove the statement. To run as another role, make that role the tenant's owner (create_tenant(name, owner => role)), or grant the owner what the migration needs.";
const SEARCH_PATH_HINT: &str = "A tenant migration runs with search_path = \"<tenant>\", <tenancy.shared_schemas>. Qualify names in other schemas (public.plans), or use SET LOCAL search_path …, which is undone when the migration ends.";
const RESET_ALL_HINT: &str = "RESET ALL would also reset the migration's search_path. Reset settings one by one (RESET work_mem); every setting a migration changes is undone when it ends anyway.";
const COPY_HINT: &str = "A migration runs inside the server, with no client connection to copy rows from or to. Write the rows as INSERT … VALUES (or INSERT … SELECT from a shared table), or copy them from the client after the migration. COPY from or to a server file is allowed (PostgreSQL checks the privileges).";
const TEMP_HINT: &str = "A tenant migration runs in a security-restricted operation, where PostgreSQL refuses temporary objects (they would outlive the migration in the caller's session). Use a regular table and DROP it at the end of the migration, or a WITH query.";
const PREPARED_HINT: &str = "Prepared statements belong to the caller's session, not to the migration (PostgreSQL refuses PREPARE and DEALLOCATE in a security-restricted operation). Write the statement out; for dynamic SQL, use EXECUTE inside a DO block.";
const HOLD_HINT: &str = "A cursor WITH HOLD outlives the migration in the caller's session (PostgreSQL refuses it in a security-restricted operation). Declare it WITHOUT HOLD, or loop over the query in a DO block.";
const LISTEN_HINT: &str = "Listening belongs to a client's session, not to a migration (PostgreSQL refuses it in a security-restricted operation); LISTEN from the application's connection. NOTIFY is allowed.";
const DISCARD_HINT: &str = "DISCARD resets the caller's session, not the migration's (PostgreSQL refuses it in a security-restricted operation). Remove it; every setting a migration changes is undone when it ends.";

/// Why a statement may not be part of a tenant migration, if it may not (beyond
/// [`non_transactional`]). Only code is looked at: a function or `DO` body is never refused here
/// (PostgreSQL refuses what it must when the body runs), and a function's own `SET` clause
/// (`CREATE FUNCTION … SET search_path = …`, `ALTER FUNCTION … SET …`) is not a `SET` statement.
pub fn refused(stmt: &Statement) -> Option<Refusal> {
    use SqlState::{FeatureNotSupported as Unsupported, InsufficientPrivilege as Privilege};
    let r = |state, form, hint| Some(Refusal { state, form, hint });
    let w = |i: usize| stmt.words.get(i).map_or("", String::as_str);
    match w(0) {
        "SET" | "RESET" => {
            let t = tokens(&stmt.text, 8);
            let name = |i: usize| t.get(i).and_then(|(tok, _)| tok.setting_name());
            // A dotted name (`SET role.x = 1`) is a custom setting, not ROLE.
            let plain =
                |i: usize| name(i).filter(|_| !matches!(t.get(i + 1), Some((Tok::Punct(b'.'), _))));
            let is = |i: usize, n: &str| t.get(i).is_some_and(|(tok, _)| tok.is_word(n));
            if w(0) == "RESET" {
                return match plain(1).as_deref() {
                    Some("ROLE") => r(Privilege, "RESET ROLE", IDENTITY_HINT),
                    Some("SESSION") if is(2, "AUTHORIZATION") => {
                        r(Privilege, "RESET SESSION AUTHORIZATION", IDENTITY_HINT)
                    }
                    Some("SEARCH_PATH") => r(Unsupported, "RESET search_path", SEARCH_PATH_HINT),
                    Some("ALL") => r(Unsupported, "RESET ALL", RESET_ALL_HINT),
                    _ => None,
                };
            }
            // SET [SESSION | LOCAL] name …; SET SESSION AUTHORIZATION has no modifier.
            let local = is(1, "LOCAL");
            let at = if local
                || (is(1, "SESSION") && !is(2, "AUTHORIZATION") && !is(2, "CHARACTERISTICS"))
            {
                2
            } else {
                1
            };
            match plain(at).as_deref() {
                Some("ROLE") => r(Privilege, "SET ROLE", IDENTITY_HINT),
                Some("SESSION") if is(at + 1, "AUTHORIZATION") => {
                    r(Privilege, "SET SESSION AUTHORIZATION", IDENTITY_HINT)
                }
                Some("SEARCH_PATH") if !local => r(
                    Unsupported,
                    "SET search_path without LOCAL",
                    SEARCH_PATH_HINT,
                ),
                // SET SCHEMA 'x' is SET search_path = 'x'.
                _ if is(at, "SCHEMA") && !local => {
                    r(Unsupported, "SET SCHEMA without LOCAL", SEARCH_PATH_HINT)
                }
                _ => None,
            }
        }
        "COPY" => {
            // COPY … FROM|TO STDIN|STDOUT at the top level (not a table or column named stdin).
            let t = tokens(&stmt.text, usize::MAX);
            t.windows(2).find_map(|p| match (&p[0], &p[1]) {
                ((dir, 0), (target, 0))
                    if (dir.is_word("FROM") || dir.is_word("TO"))
                        && (target.is_word("STDIN") || target.is_word("STDOUT")) =>
                {
                    let form = if dir.is_word("FROM") {
                        "COPY … FROM STDIN"
                    } else {
                        "COPY … TO STDOUT"
                    };
                    r(Unsupported, form, COPY_HINT)
                }
                _ => None,
            })
        }
        "CREATE" => {
            // CREATE [OR REPLACE] [GLOBAL | LOCAL] TEMP | TEMPORARY …
            let mut i = 1;
            if w(i) == "OR" && w(i + 1) == "REPLACE" {
                i += 2;
            }
            if w(i) == "GLOBAL" || w(i) == "LOCAL" {
                i += 1;
            }
            if w(i) == "TEMP" || w(i) == "TEMPORARY" {
                return r(Unsupported, "CREATE TEMPORARY …", TEMP_HINT);
            }
            // An object named into pg_temp (CREATE TABLE pg_temp.t) is temporary too: look at the
            // name, before the column list or AS.
            let t = tokens(&stmt.text, 16);
            let head = t
                .iter()
                .take_while(|(tok, depth)| {
                    *depth == 0 && *tok != Tok::Punct(b'(') && !tok.is_word("AS")
                })
                .map(|(tok, _)| tok)
                .collect::<Vec<_>>();
            let temp_schema = |tok: &Tok| match tok {
                Tok::Word(x) => x == "PG_TEMP" || x.starts_with("PG_TEMP_"),
                Tok::Quoted(x) => x == "pg_temp" || x.starts_with("pg_temp_"),
                _ => false,
            };
            head.windows(2)
                .any(|p| temp_schema(p[0]) && *p[1] == Tok::Punct(b'.'))
                .then_some(Refusal {
                    state: Unsupported,
                    form: "CREATE … pg_temp.…",
                    hint: TEMP_HINT,
                })
        }
        "SELECT" | "WITH" => {
            // SELECT … INTO [GLOBAL | LOCAL] TEMP | TEMPORARY t (not INSERT INTO / MERGE INTO temp).
            let t = tokens(&stmt.text, usize::MAX);
            let top: Vec<&Tok> = t
                .iter()
                .filter(|(_, d)| *d == 0)
                .map(|(tok, _)| tok)
                .collect();
            (0..top.len())
                .any(|i| {
                    top[i].is_word("INTO")
                        && !(i > 0 && (top[i - 1].is_word("INSERT") || top[i - 1].is_word("MERGE")))
                        && {
                            let mut j = i + 1;
                            if top
                                .get(j)
                                .is_some_and(|x| x.is_word("GLOBAL") || x.is_word("LOCAL"))
                            {
                                j += 1;
                            }
                            top.get(j)
                                .is_some_and(|x| x.is_word("TEMP") || x.is_word("TEMPORARY"))
                                && top.get(j + 1).is_some_and(|x| !x.is_word("FROM"))
                        }
                })
                .then_some(Refusal {
                    state: Unsupported,
                    form: "SELECT … INTO TEMPORARY …",
                    hint: TEMP_HINT,
                })
        }
        "DECLARE" => {
            // DECLARE name … CURSOR WITH HOLD FOR query: the options come before FOR.
            let t = tokens(&stmt.text, 16);
            t.windows(2)
                .take_while(|p| !p[0].0.is_word("FOR"))
                .any(|p| p[0].0.is_word("WITH") && p[1].0.is_word("HOLD"))
                .then_some(Refusal {
                    state: Unsupported,
                    form: "DECLARE … CURSOR WITH HOLD",
                    hint: HOLD_HINT,
                })
        }
        "PREPARE" if w(1) != "TRANSACTION" => r(Unsupported, "PREPARE", PREPARED_HINT),
        "EXECUTE" => r(
            Unsupported,
            "EXECUTE of a prepared statement",
            PREPARED_HINT,
        ),
        "DEALLOCATE" => r(Unsupported, "DEALLOCATE", PREPARED_HINT),
        "LISTEN" => r(Unsupported, "LISTEN", LISTEN_HINT),
        "UNLISTEN" => r(Unsupported, "UNLISTEN", LISTEN_HINT),
        "DISCARD" => r(Unsupported, "DISCARD", DISCARD_HINT),
        _ => None,
    }
}

/// How [`names_schema`] reads a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Source text PostgreSQL keeps as written and resolves each time it runs: a function body
    /// (not `BEGIN ATOMIC`), a `SET search_path` value. Every identifier counts.
    Source,
    /// A parsed object PostgreSQL deparsed (a view, default, check, policy, trigger, `BEGIN
    /// ATOMIC` body): its names are OIDs and follow a rename; only string literals count (a name
    /// looked up at run time, `to_regclass('org_1.t')`).
    Parsed,
}

/// Whether `text` names the schema `schema` by text: an unquoted word that folds (ASCII
/// lower-casing, as PostgreSQL's does) to it, or a quoted identifier equal to it. String literals
/// and dollar-quoted bodies are read as SQL too (dynamic SQL, `format('%I.t', 'org_1')`,
/// nested bodies). Conservative: a column or variable with the schema's name counts as well.
/// Text that does not lex (another language's body, a literal's loose quote) is read word by word.
pub fn names_schema(text: &str, schema: &str, stored: Stored) -> bool {
    let Ok(regions) = scan(text) else {
        return loose_names_schema(text, schema);
    };
    let b = text.as_bytes();
    regions.iter().any(|r| {
        let inner = &text[r.start..r.end];
        match r.kind {
            Kind::Comment => false,
            Kind::Double => {
                stored == Stored::Source
                    && inner[1..inner.len() - 1].replace("\"\"", "\"") == schema
            }
            Kind::Single { escape } => {
                let body = inner.strip_prefix(['E', 'e']).unwrap_or(inner);
                let mut content = body[1..body.len() - 1].replace("''", "'");
                if escape {
                    content = content.replace("\\\\", "\\").replace("\\'", "'");
                }
                names_schema(&content, schema, Stored::Source)
            }
            Kind::Dollar { tag_len } => names_schema(
                &inner[tag_len..inner.len() - tag_len],
                schema,
                Stored::Source,
            ),
            Kind::Code => {
                if stored == Stored::Parsed {
                    return false;
                }
                let mut i = r.start;
                while i < r.end {
                    if is_ident_start(b[i]) && (i == r.start || !is_ident_char(b[i - 1])) {
                        let ws = i;
                        while i < r.end && is_ident_char(b[i]) {
                            i += 1;
                        }
                        if text[ws..i].to_ascii_lowercase() == schema {
                            return true;
                        }
                    } else {
                        i += 1;
                    }
                }
                false
            }
        }
    })
}

/// [`names_schema`] for text that does not lex: any run of identifier characters that folds to
/// the name, or the name quoted.
fn loose_names_schema(text: &str, schema: &str) -> bool {
    if text.contains(&quote_ident_always(schema)) {
        return true;
    }
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .any(|w| w.to_ascii_lowercase() == schema)
}

fn quote_ident_always(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
/// `add_migration` for registered ones, and again before it is applied): it must lex, contain at
/// least one statement, and every statement must be allowed in a tenant migration ([`refused`])
/// and able to run inside a transaction block ([`non_transactional`]).
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
        // First, so DISCARD ALL (also non-transactional) gets the same answer as every DISCARD.
        if let Some(r) = refused(s) {
            return Err(TenancyError::new(
                r.state,
                format!(
                    "migration {label}: statement {} is not allowed in a tenant migration ({})",
                    s.number, r.form
                ),
            )
            .detail(format!("statement {}: {}", s.number, excerpt(&s.text)))
            .hint(r.hint));
        }
        if let Some(why) = non_transactional(s) {
            return Err(TenancyError::new(
                SqlState::ActiveSqlTransaction,
                format!(
                    "migration {label}: statement {} cannot run inside a transaction block ({why})",
                    s.number
                ),
            )
            .detail(format!("statement: {}", excerpt(&s.text)))
            .hint(if why == TRANSACTION_CONTROL {
                TRANSACTION_CONTROL_HINT
            } else {
                "pg_tenancy applies each tenant's migrations inside one transaction; use the transactional form (for example CREATE INDEX without CONCURRENTLY) or run this statement outside tenant migrations."
            }));
        }
        if let Some(form) = transaction_control_in_do(s) {
            return Err(TenancyError::new(
                SqlState::ActiveSqlTransaction,
                format!(
                    "migration {label}: statement {} cannot run inside a transaction block ({form} inside a DO body)",
                    s.number
                ),
            )
            .detail(format!("statement: {}", excerpt(&s.text)))
            .hint(TRANSACTION_CONTROL_HINT));
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

/// `sql` with its comments blanked out, also inside dollar-quoted bodies (recursively); text
/// that does not lex is returned as it is. For searching code for names (snapshots'
/// volatile-function check) without matching prose.
pub fn without_comments(sql: &str) -> String {
    let Ok(regions) = scan(sql) else {
        return sql.to_string();
    };
    let mut out = String::with_capacity(sql.len());
    for r in regions {
        let text = &sql[r.start..r.end];
        match r.kind {
            Kind::Comment => out.push(' '),
            Kind::Dollar { tag_len } if text.len() >= 2 * tag_len => {
                let tag = &text[..tag_len];
                out.push_str(tag);
                out.push_str(&without_comments(&text[tag_len..text.len() - tag_len]));
                out.push_str(tag);
            }
            _ => out.push_str(text),
        }
    }
    out
}

/// The inverse of [`substitute_tenant`] on text PostgreSQL prints back (function bodies, view and
/// trigger definitions, expressions): where the schema `name` stands as `substitute_tenant` writes
/// the tenant, it becomes `@tenant@` again, by the same lexer-aware context: the quoted identifier
/// `"name"` in code (and `name.`, a qualified reference PostgreSQL deparses without quotes), inside
/// a string literal the quoted identifier with the literal's quoting, inside a dollar-quoted body
/// the same recursively. Comments and other identifiers are left alone, so
/// `tenantize(substitute_tenant(s, n), n) == s` for text that does not otherwise name `n`. Text
/// that does not lex is treated as plain code.
pub fn tenantize(sql: &str, name: &str) -> String {
    let ident = quote_ident(name);
    let Ok(regions) = scan(sql) else {
        return sql.replace(&ident, TENANT_TOKEN);
    };
    let mut out = String::with_capacity(sql.len());
    for r in regions {
        let text = &sql[r.start..r.end];
        match r.kind {
            Kind::Code => out.push_str(&tenantize_code(text, name)),
            Kind::Double if text == ident => out.push_str(TENANT_TOKEN),
            Kind::Comment | Kind::Double => out.push_str(text),
            Kind::Single { escape } => {
                let mut inner = ident.replace('\'', "''");
                if escape {
                    inner = inner.replace('\\', "\\\\");
                }
                out.push_str(&text.replace(&inner, TENANT_TOKEN));
            }
            Kind::Dollar { tag_len } => {
                let tag = &text[..tag_len];
                let body = &text[tag_len..text.len() - tag_len];
                out.push_str(tag);
                out.push_str(&tenantize(body, name));
                out.push_str(tag);
            }
        }
    }
    out
}

/// `name.` as a whole word in code becomes `@tenant@.` (only for a name PostgreSQL prints without
/// quotes: lower-case letters, digits and `_`, not starting with a digit).
fn tenantize_code(code: &str, name: &str) -> String {
    let plain = name
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if !plain {
        return code.to_string();
    }
    let needle = format!("{name}.");
    let b = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(p) = code[from..].find(&needle) {
        let at = from + p;
        let word_start = at == 0 || !(is_ident_char(b[at - 1]) || b[at - 1] == b'.');
        if word_start {
            out.push_str(&code[last..at]);
            out.push_str(TENANT_TOKEN);
            out.push('.');
            last = at + needle.len();
        }
        from = at + needle.len();
    }
    out.push_str(&code[last..]);
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn created_table_names_the_table_of_create_table() {
        assert_eq!(
            created_table("CREATE TABLE kids (x int) INHERITS (users)").as_deref(),
            Some("kids")
        );
        assert_eq!(
            created_table("create unlogged table if not exists \"Odd\".t2 (x int)").as_deref(),
            Some("\"Odd\".t2")
        );
        assert_eq!(
            created_table("CREATE TEMP TABLE t AS SELECT 1").as_deref(),
            Some("t")
        );
        assert_eq!(created_table("CREATE INDEX ON t (x)"), None);
        assert_eq!(created_table("ALTER TABLE t ADD c int"), None);
    }

    use super::*;

    #[test]
    fn names_schema_in_source_text() {
        let src = Stored::Source;
        assert!(names_schema(
            r#" SELECT count(*) FROM "org_1".tasks "#,
            "org_1",
            src
        ));
        assert!(names_schema("SELECT 1 FROM ORG_1.tasks", "org_1", src));
        assert!(names_schema(
            "BEGIN INSERT INTO org_1.audit VALUES (1); END",
            "org_1",
            src
        ));
        // Dynamic SQL and names passed as text.
        assert!(names_schema(
            "BEGIN EXECUTE 'SELECT 1 FROM org_1.t'; END",
            "org_1",
            src
        ));
        assert!(names_schema("SELECT format('%I.t', 'org_1')", "org_1", src));
        assert!(names_schema(r"SELECT E'\'org_1\'.t'", "org_1", src));
        assert!(names_schema(
            "DO $x$ BEGIN PERFORM 1 FROM org_1.t; END $x$",
            "org_1",
            src
        ));
        // A search_path value.
        assert!(names_schema(r#""org_1", public"#, "org_1", src));
        assert!(names_schema("org_1, public", "org_1", src));
        // Other names, comments, case-sensitive quoted names.
        assert!(!names_schema(
            "SELECT 1 FROM org_10.t, my_org_1, org_1x",
            "org_1",
            src
        ));
        assert!(!names_schema(
            "SELECT 1 -- org_1\n /* org_1 */",
            "org_1",
            src
        ));
        assert!(!names_schema(r#"SELECT 1 FROM "ORG_1".t"#, "org_1", src));
        assert!(!names_schema("SELECT 1 FROM Org_1.t", "Org_1", src));
        assert!(names_schema(r#"SELECT 1 FROM "Org_1".t"#, "Org_1", src));
        assert!(names_schema(r#"SELECT 1 FROM "a""b".t"#, "a\"b", src));
        assert!(!names_schema("SELECT $1, x$org_1", "org_1", src));
        // Not SQL: read word by word.
        assert!(names_schema(
            "plpy.execute(\"select * from org_1.t",
            "org_1",
            src
        ));
        assert!(!names_schema(
            "plpy.execute(\"select * from org_10.t",
            "org_1",
            src
        ));
    }

    #[test]
    fn names_schema_in_parsed_text_only_by_literal() {
        let parsed = Stored::Parsed;
        assert!(!names_schema(
            "SELECT id FROM org_1.accounts WHERE n > 10",
            "org_1",
            parsed
        ));
        assert!(!names_schema(r#"SELECT "org_1".f()"#, "org_1", parsed));
        assert!(names_schema(
            "to_regclass('org_1.users'::text)",
            "org_1",
            parsed
        ));
        assert!(names_schema(
            r#"to_regclass('"org_1".tasks'::text)"#,
            "org_1",
            parsed
        ));
        assert!(!names_schema(
            r#"to_regclass('"ORG_1".tasks'::text)"#,
            "org_1",
            parsed
        ));
        assert!(!names_schema("'it''s org_10'::text", "org_1", parsed));
    }

    fn texts(sql: &str) -> Vec<String> {
        split_statements(sql)
            .unwrap()
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn tenantize_undoes_substitute_tenant() {
        for sql in [
            "CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $f$ BEGIN RETURN '@tenant@' || (SELECT count(*) FROM @tenant@.events); END $f$",
            "SELECT '@tenant@'::text AS label, E'@tenant@\\n', @tenant@.t.x FROM @tenant@.t -- @tenant@",
            "EXECUTE FUNCTION stamp('@tenant@')",
            "SET search_path = @tenant@",
        ] {
            for name in ["tpl", "tenancy_scratch_42", "Org \"1\"", "it's"] {
                let s = substitute_tenant(sql, name).unwrap();
                assert_eq!(tenantize(&s, name), sql, "{name}: {s}");
            }
        }
        // PostgreSQL deparses a plain name unquoted; other words ending in it are left alone.
        assert_eq!(
            tenantize(
                "SELECT tpl.a.x, mytpl.b, \"tpl_x\".c, 'tpl' FROM tpl.a",
                "tpl"
            ),
            "SELECT @tenant@.a.x, mytpl.b, \"tpl_x\".c, 'tpl' FROM @tenant@.a"
        );
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
        ] {
            assert!(check_migration("0001_x", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn transaction_control_in_do_bodies_is_found() {
        for (bad, form) in [
            ("DO $$ BEGIN COMMIT; END $$", "COMMIT"),
            ("do $$begin commit; end$$", "COMMIT"),
            (
                "DO $$ BEGIN INSERT INTO t VALUES (1); COMMIT AND CHAIN; END $$",
                "COMMIT",
            ),
            ("DO $$ BEGIN IF x THEN ROLLBACK; END IF; END $$", "ROLLBACK"),
            (
                "DO $$ BEGIN FOR i IN 1..3 LOOP UPDATE t SET x = i; COMMIT; END LOOP; END $$",
                "COMMIT",
            ),
            (
                "DO $$ BEGIN PERFORM 1; EXCEPTION WHEN others THEN ROLLBACK; END $$",
                "ROLLBACK",
            ),
            (
                "DO $$ DECLARE n int; BEGIN n := 1; COMMIT; END $$",
                "COMMIT",
            ),
            ("DO $$ BEGIN <<inner>> BEGIN COMMIT; END; END $$", "COMMIT"),
            (
                "DO $$ BEGIN IF a THEN NULL; ELSE COMMIT; END IF; END $$",
                "COMMIT",
            ),
            ("DO 'BEGIN COMMIT; END'", "COMMIT"),
            (r"DO E'BEGIN RAISE NOTICE \'x\'; COMMIT; END'", "COMMIT"),
            ("DO LANGUAGE plpgsql $b$ BEGIN COMMIT; END $b$", "COMMIT"),
            ("DO $b$ BEGIN COMMIT; END $b$ LANGUAGE PLPGSQL", "COMMIT"),
            ("DO LANGUAGE 'plpgsql' $$ BEGIN COMMIT; END $$", "COMMIT"),
            ("DO $$ BEGIN SAVEPOINT s; END $$", "SAVEPOINT"),
            (
                "DO $$ BEGIN RELEASE SAVEPOINT s; END $$",
                "RELEASE SAVEPOINT",
            ),
            ("DO $$ BEGIN RELEASE \"s\"; END $$", "RELEASE SAVEPOINT"),
            ("DO $$ BEGIN ROLLBACK TO SAVEPOINT s; END $$", "ROLLBACK"),
            ("DO $$ BEGIN START TRANSACTION; END $$", "START TRANSACTION"),
            ("DO $$ BEGIN ABORT; END $$", "ABORT"),
            (
                "DO /* c */ $$ BEGIN -- note\n COMMIT /* now */ ; END $$",
                "COMMIT",
            ),
        ] {
            let e = check_migration("0001_x", &format!("CREATE TABLE ok (x int);\n{bad};"))
                .expect_err(bad);
            assert_eq!(e.state, SqlState::ActiveSqlTransaction, "{bad}");
            let expected = format!(
                "statement 2 cannot run inside a transaction block ({form} inside a DO body)"
            );
            assert!(e.message.contains(&expected), "{bad}: {}", e.message);
            assert!(
                e.hint.as_deref().unwrap().contains("BEGIN … EXCEPTION"),
                "{bad}"
            );
        }
        for ok in [
            "DO $$ BEGIN NULL; END $$",
            "DO $$ DECLARE commit int; rollback text; BEGIN commit := 1; END $$",
            "DO $$ DECLARE c int; BEGIN SELECT commit INTO c FROM t; END $$",
            "DO $$ BEGIN UPDATE t SET rollback = true; END $$",
            "DO $$ BEGIN RAISE NOTICE 'COMMIT;'; END $$",
            "DO $$ BEGIN -- COMMIT;\n NULL; END $$",
            "DO $$ BEGIN PERFORM \"commit\"(); END $$",
            "DO $$ BEGIN x := CASE WHEN a THEN commit ELSE rollback END; END $$",
            "DO $$ BEGIN BEGIN NULL; EXCEPTION WHEN others THEN NULL; END; END $$",
            "DO LANGUAGE plperl $$ COMMIT; $$",
            "DO $$ COMMIT; $$ LANGUAGE sql_like_other",
            "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$",
            "SELECT 'DO $$ BEGIN COMMIT; END $$'",
        ] {
            assert!(check_migration("0001_x", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn top_level_transaction_control_gets_its_own_hint() {
        for bad in [
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT s",
            "RELEASE s",
            "START TRANSACTION",
            "BEGIN",
        ] {
            let e = check_migration("0001_x", &format!("{bad};")).unwrap_err();
            assert_eq!(e.state, SqlState::ActiveSqlTransaction, "{bad}");
            assert!(
                e.hint.as_deref().unwrap().contains("BEGIN … EXCEPTION"),
                "{bad}"
            );
        }
        let e = check_migration("0001_x", "VACUUM;").unwrap_err();
        assert!(e.hint.as_deref().unwrap().contains("CONCURRENTLY"));
    }

    /// Checks `bad` is refused as statement 2 of migration 0102_x with `state`, and the error
    /// names the migration and statement, shows the statement and has a hint.
    fn assert_refused(bad: &str, state: SqlState) {
        let e =
            check_migration("0102_x", &format!("CREATE TABLE ok (x int);\n{bad};")).expect_err(bad);
        assert_eq!(e.state, state, "{bad}: {e}");
        assert!(
            e.message
                .contains("migration 0102_x: statement 2 is not allowed"),
            "{bad}: {}",
            e.message
        );
        assert_eq!(
            e.detail.as_deref(),
            Some(format!("statement 2: {}", excerpt(bad)).as_str()),
            "{bad}"
        );
        assert!(e.hint.is_some_and(|h| !h.is_empty()), "{bad}");
    }

    #[test]
    fn identity_changes_are_refused_as_insufficient_privilege() {
        for bad in [
            "SET ROLE app",
            "set role app",
            "SET ROLE NONE",
            "SET SESSION ROLE app",
            "SET LOCAL ROLE app",
            "SET /* who */ ROLE -- me\n app",
            "SET role = 'app'",
            "SET \"role\" TO app",
            "RESET ROLE",
            "reset role",
            "SET SESSION AUTHORIZATION app",
            "set session authorization default",
            "SET SESSION SESSION AUTHORIZATION app",
            "SET LOCAL SESSION AUTHORIZATION app",
            "RESET SESSION AUTHORIZATION",
        ] {
            assert_refused(bad, SqlState::InsufficientPrivilege);
        }
    }

    #[test]
    fn search_path_changes_without_local_are_refused() {
        for bad in [
            "SET search_path = pg_temp",
            "SET search_path TO public",
            "set Search_Path to default",
            "SET SESSION search_path = public",
            "SET \"search_path\" = public",
            "SET SCHEMA 'public'",
            "RESET search_path",
            "RESET ALL",
            "reset all",
        ] {
            assert_refused(bad, SqlState::FeatureNotSupported);
        }
    }

    #[test]
    fn copy_to_or_from_the_client_is_refused() {
        for bad in [
            "COPY t FROM STDIN",
            "copy t (a, b) from stdin with (format csv)",
            "COPY \"t\" (a, b, c, d, e, f, g, h, i, j) FROM STDIN",
            "COPY t TO STDOUT",
            "COPY (SELECT a, b FROM t WHERE x IN (SELECT 1)) TO STDOUT WITH (FORMAT csv)",
            "COPY BINARY t FROM STDIN",
            "COPY t FROM STDOUT",
        ] {
            assert_refused(bad, SqlState::FeatureNotSupported);
        }
    }

    #[test]
    fn session_state_is_refused() {
        for bad in [
            "DISCARD ALL",
            "DISCARD PLANS",
            "discard temp",
            "DISCARD SEQUENCES",
            "LISTEN ch",
            "UNLISTEN *",
            "CREATE TEMP TABLE x (a int)",
            "CREATE TEMPORARY TABLE x AS SELECT 1",
            "create local temp table x (a int)",
            "CREATE GLOBAL TEMPORARY TABLE x (a int)",
            "CREATE TEMP VIEW v AS SELECT 1",
            "CREATE OR REPLACE TEMP VIEW v AS SELECT 1",
            "CREATE TEMP RECURSIVE VIEW v (n) AS SELECT 1",
            "CREATE TEMP SEQUENCE s",
            "CREATE TABLE pg_temp.x (a int)",
            "CREATE SEQUENCE IF NOT EXISTS \"pg_temp\".s",
            "SELECT 1 AS a INTO TEMP x",
            "select * into temporary table x from t",
            "SELECT * INTO LOCAL TEMP x FROM t",
            "WITH q AS (SELECT 1 AS a) SELECT a INTO TEMP x FROM q",
            "PREPARE q AS SELECT 1",
            "PREPARE q (int) AS SELECT $1",
            "EXECUTE q",
            "EXECUTE q (1)",
            "DEALLOCATE q",
            "DEALLOCATE ALL",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "declare c no scroll cursor with hold for select 1",
        ] {
            assert_refused(bad, SqlState::FeatureNotSupported);
        }
    }

    #[test]
    fn near_misses_are_allowed() {
        for ok in [
            // Settings a migration may change: undone when it ends.
            "SET LOCAL search_path = pg_temp",
            "SET LOCAL search_path TO DEFAULT",
            "set local Search_Path to public",
            "SET LOCAL SCHEMA 'public'",
            "SET work_mem = '64MB'",
            "SET LOCAL lock_timeout = '1s'",
            "SET TIME ZONE 'UTC'",
            "SET CONSTRAINTS ALL DEFERRED",
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            "SET myapp.role = 'x'",
            "SET role.x = 1",
            "RESET work_mem",
            // A routine's own SET clause, and SET inside a body.
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT 1 $$",
            "CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE plpgsql SET ROLE = app AS $$ BEGIN SET ROLE app; RESET ALL; DISCARD ALL; LISTEN x; END $$",
            "CREATE PROCEDURE p() LANGUAGE sql SET search_path = public BEGIN ATOMIC SELECT 1; END",
            "CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $b$ BEGIN SET search_path = public; CREATE TEMP TABLE x (a int); EXECUTE 'SELECT 1'; COPY t FROM STDIN; END $b$",
            "DO $$ BEGIN SET LOCAL search_path = public; EXECUTE 'SELECT 1'; END $$",
            "ALTER FUNCTION f() SET search_path = public",
            "ALTER FUNCTION f() RESET ALL",
            "ALTER TABLE t SET SCHEMA other",
            "ALTER TABLE t SET (fillfactor = 70)",
            "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1",
            "ALTER ROLE app SET search_path = public",
            "UPDATE t SET role = 'admin'",
            "SELECT 'SET ROLE app', 'COPY t FROM STDIN'",
            "SELECT set_config('application_name', 'x', true)",
            // COPY with a server file (PostgreSQL checks the privileges), or a table named stdin.
            "COPY t FROM '/tmp/file.csv' WITH (FORMAT csv)",
            "COPY t TO '/tmp/out'",
            "COPY stdin FROM '/tmp/file'",
            "COPY (SELECT * FROM stdin) TO '/tmp/out'",
            "COPY t FROM PROGRAM 'cat /tmp/x'",
            // Not temporary.
            "CREATE UNLOGGED TABLE x (a int)",
            "CREATE TABLE temp (a int)",
            "CREATE TABLE x (a int REFERENCES pg_temp_x (id))",
            "CREATE VIEW v AS SELECT * FROM pg_temp_things.t",
            "CREATE INDEX ON temp (a)",
            "SELECT * INTO TABLE x FROM t",
            "SELECT * INTO UNLOGGED x FROM t",
            "WITH q AS (SELECT 1 AS a) INSERT INTO temp SELECT a FROM q",
            "WITH q AS (SELECT 1 AS a) MERGE INTO temp USING q ON true WHEN MATCHED THEN DO NOTHING",
            "SELECT temp FROM t",
            // Other statements that look alike.
            "NOTIFY ch, 'x'",
            "SELECT pg_notify('ch', 'x')",
            "DECLARE c CURSOR FOR SELECT 1",
            "DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1",
            "DECLARE c CURSOR FOR SELECT 1 AS with, 2 AS hold",
            "CREATE TABLE listen (a int)",
            "INSERT INTO discard VALUES (1)",
        ] {
            let r = check_migration("0102_x", ok);
            assert!(r.is_ok(), "{ok}: {}", r.unwrap_err());
        }
    }

    #[test]
    fn discard_all_is_refused_as_session_state_before_transaction_rules() {
        let e = check_migration("0102_x", "DISCARD ALL").unwrap_err();
        assert_eq!(e.state, SqlState::FeatureNotSupported);
        // The other two-phase-commit PREPARE is still a transaction matter.
        let e = check_migration("0102_x", "PREPARE TRANSACTION 'x'").unwrap_err();
        assert_eq!(e.state, SqlState::ActiveSqlTransaction);
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
