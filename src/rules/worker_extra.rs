//! The extra argument of a fleet background worker (`bgw_extra`): the OIDs of the database and
//! the role the worker connects as, written by `_fleet_launch` and read by the worker.
//!
//! Decoding is strict: anything but two positive decimal OIDs separated by one space is an error
//! naming what was wrong, never a silent OID 0 (which would connect to no database, or as the
//! bootstrap superuser).

use crate::rules::error::{Result, SqlState, TenancyError};

/// `"<database oid> <role oid>"`.
pub fn encode(database: u32, role: u32) -> String {
    format!("{database} {role}")
}

/// The (database, role) OIDs of an extra argument written by [`encode`].
pub fn decode(extra: &str) -> Result<(u32, u32)> {
    let bad = |what: String| {
        TenancyError::new(
            SqlState::InvalidParameterValue,
            format!("pg_tenancy fleet worker: bad extra argument {extra:?}: {what}"),
        )
        .hint("The extra argument is \"<database oid> <role oid>\", as tenancy._fleet_launch writes it; start workers with CALL tenancy.migrate_all(jobs => N).")
    };
    let parts: Vec<&str> = extra.split(' ').collect();
    let [database, role] = parts[..] else {
        return Err(bad(format!(
            "expected 2 space-separated OIDs, found {} fields",
            parts.len()
        )));
    };
    let oid = |name: &str, text: &str| -> Result<u32> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!(
                "the {name} OID {text:?} is not a decimal number"
            )));
        }
        match text.parse::<u32>() {
            Ok(0) => Err(bad(format!("the {name} OID is 0 (InvalidOid)"))),
            Ok(v) => Ok(v),
            Err(_) => Err(bad(format!("the {name} OID {text} is out of range"))),
        }
    };
    Ok((oid("database", database)?, oid("role", role)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(decode(&encode(16384, 10)), Ok((16384, 10)));
        assert_eq!(decode(&encode(u32::MAX, 1)), Ok((u32::MAX, 1)));
    }

    #[test]
    fn refuses_garbage_naming_what_is_wrong() {
        for (extra, needle) in [
            ("", "found 1 fields"),
            ("16384", "found 1 fields"),
            ("16384 10 7", "found 3 fields"),
            ("16384  10", "found 3 fields"),
            ("x 10", "database OID \"x\" is not a decimal number"),
            ("16384 ", "role OID \"\" is not a decimal number"),
            ("16384 -10", "role OID \"-10\" is not a decimal number"),
            ("+1 10", "database OID \"+1\" is not a decimal number"),
            ("0 10", "database OID is 0"),
            ("16384 0", "role OID is 0"),
            ("99999999999 10", "database OID 99999999999 is out of range"),
        ] {
            let e = decode(extra).unwrap_err();
            assert_eq!(e.state, SqlState::InvalidParameterValue, "{extra:?}");
            assert!(e.message.contains(needle), "{extra:?}: {}", e.message);
            assert!(e.message.contains(&format!("{extra:?}")), "{}", e.message);
            assert!(e.hint.is_some(), "{extra:?}");
        }
    }
}
