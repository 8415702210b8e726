//! The tenant migration set: file names, versions and their order, checksums, and merging the
//! embedded set with the registered one.
//!
//! Pure: no pgrx. `build.rs` includes this file, so a malformed, duplicate or non-transactional
//! migration fails the build with a message naming the file.

use std::cmp::Ordering;

use sha2::{Digest, Sha256};

use crate::rules::error::{Result, SqlState, TenancyError};

/// A migration as pg_tenancy knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub version: String,
    pub name: String,
    pub checksum: String,
    pub sql: String,
    /// The role that registered it (`tenancy.add_migration`); `None` for an embedded migration,
    /// whose author is the extension's owner.
    pub author: Option<String>,
}

impl Migration {
    pub fn new(version: &str, name: &str, sql: &str) -> Migration {
        Migration {
            version: version.to_string(),
            name: name.to_string(),
            checksum: checksum(sql),
            sql: sql.to_string(),
            author: None,
        }
    }

    /// `0003_tasks`: how messages name a migration.
    pub fn label(&self) -> String {
        format!("{}_{}", self.version, self.name)
    }
}

/// Hex sha256 of the migration text, exactly as written (before `@tenant@` substitution).
pub fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The longest version, in digits: a version then still fits in a `bigint` (19 digits), and a
/// timestamp version (`YYYYMMDDHHMMSS`, 14 digits) has room for fractions of a second.
pub const MAX_VERSION_DIGITS: usize = 18;

/// The longest migration name, in characters (file names and messages stay readable).
pub const MAX_NAME_CHARS: usize = 100;

const VERSION_HINT: &str = "A version is digits only, greater than zero and at most 18 digits long, such as '0005' or '20261126093000'; versions are ordered numerically.";

/// A version is one or more ASCII digits: what a version may look like when one is looked up.
pub fn check_version(version: &str) -> Result<()> {
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            format!("migration version {version:?} is not a number"),
        )
        .hint(VERSION_HINT));
    }
    Ok(())
}

/// The version of a migration being added (registered or embedded): [`check_version`], greater
/// than zero (`0` means "no migration" to the generator's `base_version`), and at most
/// [`MAX_VERSION_DIGITS`] digits, leading zeros included.
pub fn check_new_version(version: &str) -> Result<()> {
    check_version(version)?;
    if version.bytes().all(|b| b == b'0') {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            format!("migration version {version:?} is zero; versions start at 1"),
        )
        .hint(VERSION_HINT));
    }
    if version.len() > MAX_VERSION_DIGITS {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            format!(
                "migration version {version} is {} digits long; the limit is {MAX_VERSION_DIGITS}",
                version.len()
            ),
        )
        .hint(VERSION_HINT));
    }
    Ok(())
}

/// Whether `version` means "before every migration" (`'0'`, `'000'`): the generator's
/// `base_version` for building from no migrations.
pub fn is_zero(version: &str) -> bool {
    !version.is_empty() && version.bytes().all(|b| b == b'0')
}

/// A migration name: non-empty, no control characters, at most [`MAX_NAME_CHARS`] characters.
pub fn check_name(version: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            format!("migration {version} has an empty name or a name with control characters"),
        )
        .hint("Name the migration after what it does, such as 'add_invoices'."));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            format!(
                "migration {version} has a name of {chars} characters; the limit is {MAX_NAME_CHARS}"
            ),
        )
        .hint("Name the migration after what it does in a few words, such as 'add_invoices'; put the details in a comment in its SQL."));
    }
    Ok(())
}

fn numeric_key(version: &str) -> &str {
    let t = version.trim_start_matches('0');
    if t.is_empty() {
        "0"
    } else {
        t
    }
}

/// Orders versions numerically (`2` < `10`, `0001` == `1`), without overflow for long versions.
pub fn cmp_versions(a: &str, b: &str) -> Ordering {
    let (a, b) = (numeric_key(a), numeric_key(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Parses `<version>_<name>.sql`. Returns `Ok(None)` for files that are not `.sql` (READMEs).
pub fn parse_file_name(file_name: &str) -> Result<Option<(String, String)>> {
    let Some(stem) = file_name.strip_suffix(".sql") else {
        return Ok(None);
    };
    let bad = || {
        TenancyError::new(
            SqlState::InvalidParameterValue,
            format!("migration file {file_name:?} is not named <version>_<name>.sql"),
        )
        .hint("Name tenant migration files like 0005_add_invoices.sql: digits, an underscore, a name.")
    };
    let (version, name) = stem.split_once('_').ok_or_else(bad)?;
    if check_version(version).is_err() || name.is_empty() {
        return Err(bad());
    }
    // Named as it should be, but a version or name out of bounds: say which.
    check_new_version(version)
        .and_then(|()| check_name(version, name))
        .map_err(|e| TenancyError {
            message: format!("migration file {file_name:?}: {}", e.message),
            ..e
        })?;
    Ok(Some((version.to_string(), name.to_string())))
}

/// Sorts into apply order and refuses two migrations with the same (numeric) version.
pub fn order(mut set: Vec<Migration>) -> Result<Vec<Migration>> {
    set.sort_by(|a, b| cmp_versions(&a.version, &b.version));
    for pair in set.windows(2) {
        if cmp_versions(&pair[0].version, &pair[1].version) == Ordering::Equal {
            return Err(TenancyError::new(
                SqlState::DuplicateObject,
                format!(
                    "migrations {} and {} have the same version",
                    pair[0].label(),
                    pair[1].label()
                ),
            )
            .hint("Give each migration its own version number."));
        }
    }
    Ok(set)
}

/// The error for a version taken by another migration with different content.
pub fn clash(existing: &Migration, source: &str, new: &Migration) -> TenancyError {
    TenancyError::new(
        SqlState::DuplicateObject,
        format!(
            "migration version {} is already taken by {} migration {} with different content (checksum {}, new checksum {})",
            new.version,
            source,
            existing.label(),
            existing.checksum,
            new.checksum
        ),
    )
    .hint("Give the new migration a version number of its own; tenancy.migrations lists the versions in use.")
}

/// Embedded ∪ registered, in apply order. The same version with the same text in both counts once;
/// with different text it is refused.
pub fn merge(embedded: Vec<Migration>, registered: Vec<Migration>) -> Result<Vec<Migration>> {
    let mut all = embedded;
    for r in registered {
        match all
            .iter()
            .find(|m| cmp_versions(&m.version, &r.version) == Ordering::Equal)
        {
            Some(m) if m.checksum == r.checksum => {}
            Some(m) => return Err(clash(m, "embedded", &r)),
            None => all.push(r),
        }
    }
    order(all)
}

/// The known migration with this version (numerically: `3` finds `0003`).
pub fn find<'a>(known: &'a [Migration], version: &str) -> Result<&'a Migration> {
    check_version(version)?;
    known
        .iter()
        .find(|m| cmp_versions(&m.version, version) == Ordering::Equal)
        .ok_or_else(|| {
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("migration version {version} is not a known tenant migration"),
            )
            .hint("SELECT * FROM tenancy.migrations lists the known versions.")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        let mut v = vec!["10", "2", "0001", "20261126093000", "0003"];
        v.sort_by(|a, b| cmp_versions(a, b));
        assert_eq!(v, vec!["0001", "2", "0003", "10", "20261126093000"]);
        assert_eq!(cmp_versions("0001", "1"), Ordering::Equal);
        assert_eq!(cmp_versions("0", "000"), Ordering::Equal);
    }

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("0001_users.sql").unwrap(),
            Some(("0001".into(), "users".into()))
        );
        assert_eq!(
            parse_file_name("20261126093000_add_x_y.sql").unwrap(),
            Some(("20261126093000".into(), "add_x_y".into()))
        );
        assert_eq!(parse_file_name("README.md").unwrap(), None);
        for bad in [
            "users.sql",
            "v1_users.sql",
            "0001.sql",
            "0001_.sql",
            "_x.sql",
            "1a_x.sql",
        ] {
            let e = parse_file_name(bad).unwrap_err();
            assert!(e.message.contains(bad), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn new_versions_are_positive_and_at_most_18_digits() {
        for ok in [
            "1",
            "0001",
            "20261126093000",
            &"9".repeat(18),
            "000000000000000001",
        ] {
            assert!(check_new_version(ok).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("0", "zero"),
            ("0000", "zero"),
            (&"1".repeat(19) as &str, "19 digits"),
            (&"1".repeat(26), "26 digits"),
            ("0000000000000000001", "19 digits"),
            ("", "not a number"),
            ("1a", "not a number"),
            ("-1", "not a number"),
        ] {
            let e = check_new_version(bad).unwrap_err();
            assert_eq!(e.state, SqlState::InvalidParameterValue, "{bad}");
            assert!(e.message.contains(needle), "{bad}: {}", e.message);
            assert!(e.hint.as_deref().unwrap().contains("18 digits"), "{bad}");
        }
        // Looking a version up stays lenient: what was registered before the limits is found.
        assert!(check_version(&"1".repeat(26)).is_ok());
        assert!(check_version("0").is_ok());
        assert!(is_zero("0") && is_zero("000") && !is_zero("") && !is_zero("10"));
    }

    #[test]
    fn names_are_limited_to_100_characters() {
        assert!(check_name("1", &"n".repeat(100)).is_ok());
        assert!(check_name("1", &"é".repeat(100)).is_ok());
        let e = check_name("0100", &"n".repeat(10_000)).unwrap_err();
        assert_eq!(e.state, SqlState::InvalidParameterValue);
        assert!(
            e.message.contains("0100") && e.message.contains("10000 characters"),
            "{}",
            e.message
        );
        assert!(e.hint.is_some());
        for bad in ["", " ", "a\tb", "a\nb", "x\u{7f}"] {
            assert!(check_name("1", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_names_out_of_bounds_say_why() {
        let e = parse_file_name("0_start.sql").unwrap_err();
        assert!(
            e.message.contains("0_start.sql") && e.message.contains("zero"),
            "{}",
            e.message
        );
        let long = format!("{}_x.sql", "1".repeat(19));
        let e = parse_file_name(&long).unwrap_err();
        assert!(
            e.message.contains(&long) && e.message.contains("19 digits"),
            "{}",
            e.message
        );
        let e = parse_file_name(&format!("1_{}.sql", "n".repeat(101))).unwrap_err();
        assert!(e.message.contains("101 characters"), "{}", e.message);
    }

    #[test]
    fn checksum_is_sha256_hex() {
        assert_eq!(
            checksum("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let e = order(vec![
            Migration::new("1", "a", "select 1"),
            Migration::new("0001", "b", "select 2"),
        ])
        .unwrap_err();
        assert_eq!(e.state, SqlState::DuplicateObject);
    }

    #[test]
    fn merge_dedupes_identical_and_refuses_clashes() {
        let e = vec![Migration::new("0001", "a", "select 1")];
        let same = vec![Migration::new("1", "a", "select 1")];
        assert_eq!(merge(e.clone(), same).unwrap().len(), 1);
        let other = vec![Migration::new("0001", "a", "select 2")];
        let err = merge(e.clone(), other).unwrap_err();
        assert_eq!(err.state, SqlState::DuplicateObject);
        assert!(err.message.contains("0001_a"));
        let later = vec![Migration::new("0002", "b", "select 2")];
        let all = merge(e, later).unwrap();
        assert_eq!(
            all.iter().map(|m| m.version.as_str()).collect::<Vec<_>>(),
            vec!["0001", "0002"]
        );
    }
}
