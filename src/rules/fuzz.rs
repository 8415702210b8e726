//! Bounded fuzzing of the pure parsers (name rules, template parsing, migration file names, the
//! SQL lexer and `@tenant@` substitution): random inputs built from the characters and tokens
//! that matter, a fixed seed so a failure reproduces, and invariants instead of expected values.
//! Runs in `make test` with plain `cargo test` (a few seconds); `FUZZ_ITERATIONS` raises the count.

use crate::rules::migration_set::parse_file_name;
use crate::rules::names::{quote_ident, validate};
use crate::rules::sqltext::{check_migration, split_statements, substitute_tenant};
use crate::rules::template::Template;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PIECES: &[&str] = &[
    "'",
    "\"",
    "$$",
    "$a$",
    "$",
    "--",
    "/*",
    "*/",
    ";",
    "\n",
    " ",
    "E'",
    "\\",
    "@tenant@",
    "@tenant",
    "CREATE",
    "INDEX",
    "CONCURRENTLY",
    "BEGIN",
    "ATOMIC",
    "END",
    "CASE",
    "FUNCTION",
    "x",
    "é",
    "0",
    "_",
    ":",
    "::",
    "pg_",
    "\t",
    "\0",
    "''",
    "\"\"",
    "(",
    ")",
    "VACUUM",
    "COMMIT",
    "SET",
    "ROLE",
    "LOCAL",
    "COPY",
    "STDIN",
    "INTO",
    "TEMP",
    "pg_temp",
    ".",
];

fn random_text(rng: &mut Rng, max_pieces: usize) -> String {
    (0..rng.below(max_pieces) + 1)
        .map(|_| rng.pick(PIECES))
        .collect()
}

fn iterations() -> usize {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

#[test]
fn lexer_and_substitution_never_panic_and_never_add_statements() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..iterations() {
        let sql = random_text(&mut rng, 24);
        let tenant = random_text(&mut rng, 6).replace('\0', "");
        let Ok(stmts) = split_statements(&sql) else {
            continue; // unterminated quotes are refused, which is fine
        };
        let _ = check_migration("0001_fuzz", &sql);
        for s in &stmts {
            // A statement's text always lexes on its own again, as the same single statement.
            let again = split_statements(&s.text)
                .unwrap_or_else(|e| panic!("{:?} -> {:?}: {e}", sql, s.text));
            assert!(
                again.len() <= 1,
                "{sql:?}: statement {:?} split into {again:?}",
                s.text
            );
            // Substituting any tenant name never ends a quote early or adds a statement.
            if let Ok(out) = substitute_tenant(&s.text, &tenant) {
                let n = split_statements(&out)
                    .map(|v| v.len())
                    .unwrap_or(usize::MAX);
                assert!(n <= 1, "{:?} with tenant {tenant:?} became {out:?}", s.text);
            }
        }
    }
}

#[test]
fn names_templates_and_file_names_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    for _ in 0..iterations() {
        let s = random_text(&mut rng, 12);
        if validate(&s).is_ok() {
            assert!(!s.is_empty() && s.len() <= 63 && !s.contains('\0'));
            assert!(quote_ident(&s).starts_with('"') && quote_ident(&s).ends_with('"'));
        }
        let _ = parse_file_name(&format!("{s}.sql"));
        let parts: Vec<Option<String>> = s.split(' ').map(|p| Some(p.to_string())).collect();
        if let Ok(t) = Template::parse(&parts) {
            assert!(!t.columns().is_empty());
            let rendered = t.render("t", |c| Some(c.to_string())).unwrap();
            assert!(rendered.len() >= t.columns().iter().map(|c| c.len()).sum::<usize>());
        }
    }
}

/// Pieces of enum DDL for [`enum_folding_never_panics_and_keeps_statements_whole`].
const ENUM_PIECES: &[&str] = &[
    "CREATE TYPE ",
    "ALTER TYPE ",
    "s",
    "\"S\"",
    "@tenant@.",
    "public.",
    " AS ENUM (",
    "'a'",
    "'b'",
    "'it''s'",
    "$$c$$",
    "$é$d$é$",
    ", ",
    ")",
    "(",
    " ADD VALUE ",
    "IF NOT EXISTS ",
    " BEFORE ",
    " AFTER ",
    ";",
    "'",
    "\"",
    "E'x'",
    "é",
    " ",
    "DROP TYPE s",
    "enum_range",
    "SET LOCAL search_path = public",
];

#[test]
fn enum_folding_never_panics_and_keeps_statements_whole() {
    use crate::rules::enum_values::{adds_enum_values, fold, Step};
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    for _ in 0..iterations() / 4 {
        let migrations: Vec<String> = (0..rng.below(4) + 1)
            .map(|_| {
                (0..rng.below(12) + 1)
                    .map(|_| rng.pick(ENUM_PIECES))
                    .collect()
            })
            .collect();
        let Ok(run) = migrations
            .iter()
            .map(|m| split_statements(m))
            .collect::<Result<Vec<_>, _>>()
        else {
            continue;
        };
        for m in &run {
            let _ = adds_enum_values(m);
        }
        let steps = fold(&run);
        assert_eq!(
            steps.iter().map(Vec::len).collect::<Vec<_>>(),
            run.iter().map(Vec::len).collect::<Vec<_>>(),
            "{migrations:?}"
        );
        for step in steps.iter().flatten() {
            if let Step::Run(text) = step {
                let n = split_statements(text)
                    .map(|v| v.len())
                    .unwrap_or(usize::MAX);
                assert!(n <= 1, "{migrations:?}: {text:?}");
            }
        }
    }
}
