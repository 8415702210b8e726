//! Which native foreign keys of a tenant migration are declared as shared references instead
//! (issue 15; docs/functions/reference_shared.md, "Native foreign keys in tenant migrations").
//!
//! While pg_tenancy runs a tenant's migrations, a foreign key from a tenant table to a table its
//! owner shared with `tenancy.share_table` is installed with `tenancy.reference_shared` rather
//! than as a native foreign key, when the reference enforces the very same thing: the same key,
//! the same column types, NO ACTION, checked at once (not deferrable) and validated now. Anything
//! else keeps its native foreign key, as written.

/// What a migration's `FOREIGN KEY … REFERENCES shared (…)` declares, as PostgreSQL parsed it.
#[derive(Debug, Clone)]
pub struct Declared<'a> {
    /// The referencing table's kind (`pg_class.relkind`).
    pub relkind: char,
    /// `MATCH`: `s` simple, `f` full, `p` partial.
    pub match_type: char,
    /// ON UPDATE and ON DELETE: `a` no action, `r` restrict, `c` cascade, `n` set null, `d` set
    /// default.
    pub on_update: char,
    pub on_delete: char,
    pub deferrable: bool,
    /// `NOT VALID`.
    pub not_valid: bool,
    /// `PERIOD` or `NOT ENFORCED` (PostgreSQL 18).
    pub period_or_not_enforced: bool,
    /// The referencing columns and the referenced ones (after an omitted list was filled with the
    /// shared table's primary key), in the declared order.
    pub columns: &'a [String],
    pub referenced: &'a [String],
    /// Whether each referencing column has the type of the referenced column at its position.
    pub same_types: bool,
}

/// `None` when the declaration is a shared reference to a table shared with `shared_key`; else
/// why it keeps its native foreign key.
pub fn keep_native(d: &Declared, shared_key: &[String]) -> Option<&'static str> {
    if d.relkind != 'r' {
        return Some("the referencing table is not a plain table (partitioned tables keep native foreign keys)");
    }
    if d.on_update != 'a' || d.on_delete != 'a' {
        return Some("an ON UPDATE or ON DELETE action other than NO ACTION");
    }
    if d.deferrable {
        return Some("DEFERRABLE");
    }
    if d.not_valid {
        return Some("NOT VALID");
    }
    if d.period_or_not_enforced {
        return Some("PERIOD or NOT ENFORCED");
    }
    if d.columns.len() > 1 && d.match_type != 's' {
        return Some("MATCH FULL or PARTIAL on several columns");
    }
    if d.columns.is_empty() || d.columns.len() != d.referenced.len() {
        return Some("as many referencing as referenced columns are needed");
    }
    let mut a = d.referenced.to_vec();
    let mut b = shared_key.to_vec();
    a.sort();
    b.sort();
    if a != b {
        return Some("it references other columns than the shared key");
    }
    if !d.same_types {
        return Some("a referencing column's type differs from the key's");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    fn plain<'a>(cols: &'a [String], refd: &'a [String]) -> Declared<'a> {
        Declared {
            relkind: 'r',
            match_type: 's',
            on_update: 'a',
            on_delete: 'a',
            deferrable: false,
            not_valid: false,
            period_or_not_enforced: false,
            columns: cols,
            referenced: refd,
            same_types: true,
        }
    }

    #[test]
    fn a_plain_key_becomes_a_shared_reference() {
        let (c, r) = (v(&["plan_id"]), v(&["id"]));
        assert_eq!(keep_native(&plain(&c, &r), &v(&["id"])), None);
        // Several columns in another order than the shared key's.
        let (c, r) = (v(&["a", "b"]), v(&["y", "x"]));
        assert_eq!(keep_native(&plain(&c, &r), &v(&["x", "y"])), None);
    }

    #[test]
    fn what_a_shared_reference_does_not_enforce_stays_native() {
        let (c, r, key) = (v(&["plan_id"]), v(&["id"]), v(&["id"]));
        for (d, why) in [
            (
                Declared {
                    relkind: 'p',
                    ..plain(&c, &r)
                },
                "plain table",
            ),
            (
                Declared {
                    on_delete: 'c',
                    ..plain(&c, &r)
                },
                "NO ACTION",
            ),
            (
                Declared {
                    on_delete: 'r',
                    ..plain(&c, &r)
                },
                "NO ACTION",
            ),
            (
                Declared {
                    on_update: 'c',
                    ..plain(&c, &r)
                },
                "NO ACTION",
            ),
            (
                Declared {
                    deferrable: true,
                    ..plain(&c, &r)
                },
                "DEFERRABLE",
            ),
            (
                Declared {
                    not_valid: true,
                    ..plain(&c, &r)
                },
                "NOT VALID",
            ),
            (
                Declared {
                    same_types: false,
                    ..plain(&c, &r)
                },
                "type",
            ),
            (
                Declared {
                    period_or_not_enforced: true,
                    ..plain(&c, &r)
                },
                "PERIOD",
            ),
        ] {
            let got = keep_native(&d, &key).expect("kept native");
            assert!(got.contains(why), "{got} for {d:?}");
        }
        let (c2, r2) = (v(&["a", "b"]), v(&["x", "y"]));
        let d = Declared {
            match_type: 'f',
            ..plain(&c2, &r2)
        };
        assert!(keep_native(&d, &v(&["x", "y"])).is_some());
        // A single column: MATCH FULL is the same as SIMPLE.
        assert_eq!(
            keep_native(
                &Declared {
                    match_type: 'f',
                    ..plain(&c, &r)
                },
                &key
            ),
            None
        );
        // Another unique key than the shared one.
        assert!(keep_native(&plain(&c, &v(&["code"])), &key).is_some());
        assert!(keep_native(&plain(&c2, &r2), &v(&["x"])).is_some());
    }
}
