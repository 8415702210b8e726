//! Embeds the tenant migration set: reads `tenant_migrations/` (or `$TENANCY_MIGRATIONS_DIR`),
//! checks every file with the same pure code the extension uses at run time, and writes
//! `$OUT_DIR/embedded_migrations.rs`. A malformed or duplicate version, or a statement that cannot
//! run inside a transaction or that a tenant migration may not contain (`SET ROLE`,
//! `COPY … FROM STDIN`, …), fails the build with a message naming the file.

use std::path::PathBuf;

/// The pure rules the extension itself uses (only the parts loading needs).
#[allow(dead_code)]
#[path = "src/rules"]
mod rules {
    pub mod error;
    pub mod migration_dir;
    pub mod migration_set;
    pub mod names;
    pub mod sqltext;
}

fn main() {
    println!("cargo:rerun-if-env-changed=TENANCY_MIGRATIONS_DIR");
    println!("cargo:rerun-if-changed=src/rules");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = match std::env::var_os("TENANCY_MIGRATIONS_DIR") {
        Some(d) if !d.is_empty() => manifest.join(PathBuf::from(d)),
        _ => manifest.join("tenant_migrations"),
    };
    println!("cargo:rerun-if-changed={}", dir.display());
    let set = match rules::migration_dir::load_dir(&dir) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("error: pg_tenancy tenant migrations: {e}");
            std::process::exit(1);
        }
    };
    let mut code = String::from(
        "/// The embedded tenant migrations: (version, name, sha256 checksum, SQL), in apply order.\n\
         pub static EMBEDDED: &[(&str, &str, &str, &str)] = &[\n",
    );
    for m in &set {
        code.push_str(&format!(
            "    ({:?}, {:?}, {:?}, {:?}),\n",
            m.version, m.name, m.checksum, m.sql
        ));
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_migrations.rs");
    std::fs::write(&out, code).expect("write embedded_migrations.rs");
}
