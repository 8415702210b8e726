//! The known migration set as the database sees it: the embedded set (compiled from
//! `tenant_migrations/` by `build.rs`) merged with the registered set (`tenancy.add_migration`).

use crate::db::registry;
use crate::db::report::OrRaise;
use crate::rules::migration_set::{merge, Migration};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));
}

/// The embedded set, in apply order.
pub fn embedded() -> Vec<Migration> {
    embedded::EMBEDDED
        .iter()
        .map(|(version, name, checksum, sql)| Migration {
            version: version.to_string(),
            name: name.to_string(),
            checksum: checksum.to_string(),
            sql: sql.to_string(),
            author: None,
        })
        .collect()
}

pub fn known_set() -> Vec<Migration> {
    merge(embedded(), registry::registered_migrations(true)).or_raise()
}

/// The known set without the text of registered migrations: enough to compute what is pending
/// (versions and checksums), to find a version, or to refuse a clash. (A text edited behind
/// `add_migration` is only detected where the text is read, so it never blocks these.) [`load_text`] then reads the text of just the pending ones.
pub fn known_versions() -> Vec<Migration> {
    merge(embedded(), registry::registered_migrations(false)).or_raise()
}

/// [`known_versions`] from registered migrations already read (without their text).
pub fn with_embedded(registered: Vec<Migration>) -> Vec<Migration> {
    merge(embedded(), registered).or_raise()
}

/// Fills in the text of registered migrations read by [`known_versions`], for applying them.
/// They stay held (an advisory lock per version, or their rows `FOR KEY SHARE`: see
/// [`registry::registered_sql`]) until the transaction ends, so that
/// `tenancy.remove_migration` waits for a run that applies one, and then sees it in the ledger; a
/// migration removed while this run waited for its tenant's lock is no longer part of the run.
pub fn load_text(todo: &mut Vec<Migration>) {
    let missing: Vec<String> = todo
        .iter()
        .filter(|m| m.sql.is_empty())
        .map(|m| m.version.clone())
        .collect();
    if missing.is_empty() {
        return;
    }
    for (version, sql) in registry::registered_sql(&missing) {
        if let Some(m) = todo.iter_mut().find(|m| m.version == version) {
            m.sql = sql;
        }
    }
    todo.retain(|m| !m.sql.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in set is the folder named by TENANCY_MIGRATIONS_DIR (default
    /// tenant_migrations/), read again here with the same loader.
    #[test]
    fn embedded_set_is_the_configured_folder() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = match std::env::var("TENANCY_MIGRATIONS_DIR") {
            Ok(d) if !d.is_empty() => root.join(d),
            _ => root.join("tenant_migrations"),
        };
        let folder = crate::rules::migration_dir::load_dir(&dir).unwrap();
        assert_eq!(
            embedded(),
            folder,
            "embedded set differs from {}",
            dir.display()
        );
    }
}
