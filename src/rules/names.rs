//! Tenant name rules (docs/functions/create_tenant.md) and identifier/literal quoting.
//!
//! Pure: no pgrx. A tenant name is a schema name used verbatim and always quoted; these rules run
//! before any DDL.

use crate::rules::error::{Result, SqlState, TenancyError};

/// PostgreSQL's NAMEDATALEN - 1: the longest identifier, in bytes.
pub const MAX_NAME_BYTES: usize = 63;

/// Schema names no tenant may take (compared ignoring case).
pub const RESERVED: [&str; 3] = ["public", "information_schema", "tenancy"];

/// The key under which tenant names must be unique: the name ignoring case (Unicode lower case).
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// Checks the rules that need nothing but the name itself. The registry adds the case-insensitive
/// collision check with [`fold`], and the catalog the "schema already exists" check.
pub fn validate(name: &str) -> Result<()> {
    let shown = quote_ident(name);
    if name.is_empty() {
        return Err(
            TenancyError::new(SqlState::InvalidName, "tenant name must not be empty")
                .hint("Pass a schema name such as 'org_1'."),
        );
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(TenancyError::new(
            SqlState::InvalidName,
            format!(
                "tenant name {} contains control character {}",
                quote_ident(&printable(name)),
                code_point(c)
            ),
        )
        .hint("Tenant names may not contain control characters (tabs, line breaks, NUL, U+007F-U+009F): they cannot be told apart in psql, logs or error messages. Choose a name without them."));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(TenancyError::new(
            SqlState::NameTooLong,
            format!(
                "tenant name {shown} is {} bytes long; the limit is {MAX_NAME_BYTES} bytes",
                name.len()
            ),
        )
        .hint("Choose a shorter name; pg_tenancy never truncates names (multibyte characters count as several bytes)."));
    }
    let folded = fold(name);
    if folded.starts_with("pg_") {
        return Err(TenancyError::new(
            SqlState::InvalidName,
            format!("tenant name {shown} begins with \"pg_\", which PostgreSQL reserves for system schemas"),
        )
        .hint("Choose a name that does not begin with pg_ (for example with a prefix such as 'org_')."));
    }
    if RESERVED.contains(&folded.as_str()) {
        return Err(TenancyError::new(
            SqlState::InvalidName,
            format!("tenant name {shown} is reserved"),
        )
        .hint("public, information_schema and tenancy (in any letter case) cannot be tenants; choose another name."));
    }
    Ok(())
}

/// `U+0009`: how messages name a character.
fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// The name with each control character written as `<U+0009>`, for messages about it.
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                format!("<{}>", code_point(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An attribute tenant (a value of a tenant column, no schema): not empty, no control characters.
pub fn validate_attribute_tenant(tenant: &str) -> Result<()> {
    if tenant.is_empty() {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            "an attribute tenant must not be empty",
        )
        .hint("Pass the value the tenant column holds for this tenant, e.g. 'acme'."));
    }
    if let Some(c) = tenant.chars().find(|c| c.is_control()) {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            format!(
                "attribute tenant {} contains control character {}",
                quote_literal(&printable(tenant)),
                code_point(c)
            ),
        )
        .hint("Attribute tenants may not contain control characters (tabs, line breaks, U+007F-U+009F); pass the value the tenant column holds, e.g. 'acme'."));
    }
    Ok(())
}

/// The error for a name that equals an existing tenant's name ignoring case.
pub fn collision(name: &str, existing: &str) -> TenancyError {
    TenancyError::new(
        SqlState::InvalidName,
        format!(
            "tenant name {} collides with existing tenant {} (names must differ by more than letter case)",
            quote_ident(name),
            quote_ident(existing)
        ),
    )
    .hint("Choose a name that differs from every existing tenant ignoring case, or rename the existing tenant.")
}

/// Identifiers are at most 63 bytes (NAMEDATALEN - 1): cut on a character boundary.
pub fn truncate_name(name: &str) -> String {
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Always-quoted SQL identifier: `org_1` → `"org_1"`, `a"b` → `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// SQL string literal: `it's` → `'it''s'`; backslashes make it an `E''` literal so the text is
/// read back verbatim whatever `standard_conforming_strings` is.
pub fn quote_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 3);
    if text.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(name: &str) -> Option<&'static str> {
        validate(name).err().map(|e| e.state.code())
    }

    #[test]
    fn accepts_ordinary_and_hostile_but_legal_names() {
        for ok in [
            "org_1",
            "Org 1",
            "a\"; drop schema public cascade; --",
            "ünïcødé",
            "x'y",
            "semi;colon",
            "pgx",
            "p_g",
        ] {
            assert_eq!(state(ok), None, "{ok:?} should be legal");
        }
    }

    #[test]
    fn empty_is_invalid() {
        assert_eq!(state(""), Some("42602"));
        assert!(validate("").unwrap_err().hint.is_some());
    }

    #[test]
    fn control_characters_are_invalid() {
        for (bad, code) in [
            ("a\0b", "U+0000"),
            ("tab\there", "U+0009"),
            ("line\nbreak", "U+000A"),
            ("cr\r", "U+000D"),
            ("bell\u{7}", "U+0007"),
            ("del\u{7f}", "U+007F"),
            ("c1\u{85}", "U+0085"),
            ("\u{9f}", "U+009F"),
        ] {
            assert_eq!(state(bad), Some("42602"), "{bad:?}");
            let e = validate(bad).unwrap_err();
            assert!(e.message.contains(code), "{bad:?}: {}", e.message);
            assert!(!e.message.chars().any(char::is_control), "{:?}", e.message);
            assert!(e.hint.is_some());
        }
        // Printable non-ASCII, spaces and format characters stay legal.
        for ok in ["a b", "é", "zero\u{200b}width", "nbsp\u{a0}"] {
            assert_eq!(state(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn attribute_tenants_are_not_empty_and_have_no_control_characters() {
        assert!(validate_attribute_tenant("acme").is_ok());
        assert!(validate_attribute_tenant("42").is_ok());
        for bad in ["", "acme\n", "\t", "a\u{0}"] {
            let e = validate_attribute_tenant(bad).unwrap_err();
            assert_eq!(e.state, SqlState::InvalidParameterValue, "{bad:?}");
            assert!(e.hint.is_some());
        }
    }

    #[test]
    fn length_is_counted_in_bytes_never_truncated() {
        assert_eq!(state(&"a".repeat(63)), None);
        assert_eq!(state(&"a".repeat(64)), Some("42622"));
        // 'é' is 2 bytes: 31 of them plus one ASCII byte is 63 bytes, 32 are 64 bytes.
        let ok = format!("{}x", "é".repeat(31));
        assert_eq!(ok.len(), 63);
        assert_eq!(state(&ok), None);
        let long = "é".repeat(32);
        assert_eq!(long.chars().count(), 32);
        assert_eq!(state(&long), Some("42622"));
        let e = validate(&long).unwrap_err();
        assert!(e.message.contains("64 bytes"), "{}", e.message);
        assert!(e.hint.is_some());
    }

    #[test]
    fn pg_prefix_is_invalid_in_any_case() {
        assert_eq!(state("pg_x"), Some("42602"));
        assert_eq!(state("PG_x"), Some("42602"));
        assert_eq!(state("pg_"), Some("42602"));
    }

    #[test]
    fn reserved_names_are_invalid_in_any_case() {
        for r in [
            "public",
            "information_schema",
            "tenancy",
            "Public",
            "TENANCY",
        ] {
            assert_eq!(state(r), Some("42602"), "{r}");
        }
        assert_eq!(state("public2"), None);
    }

    #[test]
    fn fold_ignores_case_including_non_ascii() {
        assert_eq!(fold("Org_1"), fold("org_1"));
        assert_eq!(fold("ÉCOLE"), fold("école"));
        assert_ne!(fold("org_1"), fold("org_2"));
        let e = collision("Org_1", "org_1");
        assert_eq!(e.state.code(), "42602");
        assert!(e.message.contains("\"Org_1\"") && e.message.contains("\"org_1\""));
        assert!(e.hint.is_some());
    }

    #[test]
    fn every_error_has_a_hint() {
        for bad in ["", "a\0", &"b".repeat(64), "pg_x", "public"] {
            assert!(validate(bad).unwrap_err().hint.is_some(), "{bad:?}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("org_1"), "\"org_1\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }
}
