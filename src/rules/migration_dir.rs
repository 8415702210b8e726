//! Loading a folder of tenant migrations: what `build.rs` embeds. Build-only: the extension never
//! reads the file system, so this module is compiled into `build.rs` and into the unit tests, not
//! into the shared library.
//!
//! Pure: no pgrx.

use std::path::Path;

use crate::rules::error::TenancyError;
use crate::rules::migration_set::{order, parse_file_name, Migration};
use crate::rules::sqltext;

/// Loads and checks every `<version>_<name>.sql` in `dir`. Errors name the file.
pub fn load_dir(dir: &Path) -> std::result::Result<Vec<Migration>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read tenant migrations folder {}: {e}",
            dir.display()
        )
    })?;
    let mut set = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let in_file = |e: TenancyError| format!("{}: {}", path.display(), e);
        let Some((version, name)) = parse_file_name(&file_name).map_err(in_file)? else {
            continue;
        };
        let sql = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let m = Migration::new(&version, &name, &sql);
        sqltext::check_migration(&m.label(), &sql).map_err(in_file)?;
        set.push((m, path));
    }
    let paths: Vec<(String, String)> = set
        .iter()
        .map(|(m, p)| (m.label(), p.display().to_string()))
        .collect();
    order(set.into_iter().map(|(m, _)| m).collect()).map_err(|e| {
        // Name the files, not only the versions.
        let files: Vec<&str> = paths
            .iter()
            .filter(|(label, _)| e.message.contains(label.as_str()))
            .map(|(_, p)| p.as_str())
            .collect();
        format!("{} ({})", e, files.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::migration_set::cmp_versions;
    use std::cmp::Ordering;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn shipped_folder_loads_in_order() {
        let set =
            load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tenant_migrations")).unwrap();
        assert!(set.len() >= 4);
        assert!(set
            .windows(2)
            .all(|p| cmp_versions(&p[0].version, &p[1].version) == Ordering::Less));
    }

    #[test]
    fn alternative_folder_loads() {
        let set = load_dir(&fixture("migrations_alt")).unwrap();
        let labels: Vec<String> = set.iter().map(Migration::label).collect();
        assert_eq!(labels, vec!["1_widgets", "2_gadgets", "10_widget_index"]);
    }

    #[test]
    fn bad_folders_name_the_file() {
        let e = load_dir(&fixture("migrations_bad_name")).unwrap_err();
        assert!(e.contains("1x_broken.sql"), "{e}");
        let e = load_dir(&fixture("migrations_duplicate")).unwrap_err();
        assert!(e.contains("0001_a.sql") && e.contains("1_b.sql"), "{e}");
        let e = load_dir(&fixture("migrations_concurrently")).unwrap_err();
        assert!(
            e.contains("0002_index.sql") && e.contains("CONCURRENTLY"),
            "{e}"
        );
    }
}
