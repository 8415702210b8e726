//! Snapshots (docs/snapshots.md): building a new tenant from a proven, squashed form of the
//! migration set instead of replaying every migration. At the level of `apply` (one tenant).
//!
//! - [`build`]: replay the whole set into a scratch schema owned by the role the snapshot is for
//!   (the same path and identity a tenant's replay uses: `apply::build_schema`), refuse what the
//!   proof cannot vouch for, squash its description (`rules::snapshot::squash`), build a second
//!   scratch from the squashed form as that owner, and compare the two (the generator's model and
//!   the extras). Both scratch schemas exist only inside the build's subtransaction.
//! - [`provision`]: `apply::migrate_run`'s new-tenant path: when a proven snapshot exists for the
//!   current fingerprint and the tenant's owner, run its steps as the owner in a
//!   security-restricted operation and write every migration's ledger row, marked
//!   `from_snapshot`. Anything else, or a failure, replays.

use std::collections::BTreeSet;
use std::time::Instant;

use pgrx::pg_sys;

use crate::apply;
use crate::db::catalog::{self, Role};
use crate::db::citus;
use crate::db::identity;
use crate::db::known_set;
use crate::db::registry::{self, Tenant};
use crate::db::report::OrRaise;
use crate::db::settings;
use crate::db::snapshot::{self as store, catching};
use crate::db::spi;
use crate::rules::migration_set::Migration;
use crate::rules::names::quote_ident;
use crate::rules::schema_diff::{self, Schema};
use crate::rules::snapshot::{self as rules, Extras, Step};
use crate::rules::sqltext;

/// The fingerprint of what a snapshot for `owner` depends on: the migration set (versions,
/// checksums, authors), the shared tables and their keys, `tenancy.shared_schemas` (the
/// migrations' search_path), Citus, the server's and pg_tenancy's versions, and the owner.
pub fn fingerprint(owner: pg_sys::Oid, known: &[Migration]) -> String {
    let mut parts = vec![
        "pg_tenancy snapshot 1".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
        spi::current_setting("server_version_num").unwrap_or_default(),
        owner.to_u32().to_string(),
        settings::shared_schemas(),
        citus::present().to_string(),
        format!(
            "convert_shared_foreign_keys={}",
            settings::CONVERT_SHARED_FKS.get()
        ),
    ];
    for m in known {
        parts.push(format!(
            "{} {} {}",
            m.version,
            m.checksum,
            m.author.as_deref().unwrap_or("")
        ));
    }
    parts.extend(store::shared_tables());
    rules::fingerprint(&parts)
}

/// The generator's description of a schema, its own name turned into `@tenant@`.
fn describe(schema: &str) -> Result<Schema, String> {
    let mut s: Schema = serde_json::from_str(&catalog::describe_schema(schema)).map_err(|e| {
        format!(
            "cannot read the description of {}: {e}",
            quote_ident(schema)
        )
    })?;
    s.tenantize(schema);
    Ok(s)
}

/// `tenancy._snapshot_extras` of a schema, read as its owner in a security-restricted operation,
/// with its shared references (`tenancy._snapshot_refs`, read as the extension's owner).
fn extras_text(schema: &str, owner: &Role) -> String {
    let own = identity::as_tenant_owner(owner.oid, "pg_catalog, pg_temp", || {
        spi::get_one::<String>(
            "SELECT tenancy._snapshot_extras($1::pg_catalog.text::pg_catalog.name)::pg_catalog.text",
            &[schema.into()],
        )
    })
    .unwrap_or_default();
    let refs = identity::as_extension_owner(|| {
        spi::get_one::<String>(
            "SELECT tenancy._snapshot_refs($1::pg_catalog.text::pg_catalog.name)::pg_catalog.text",
            &[schema.into()],
        )
    })
    .unwrap_or_default();
    let mut v: serde_json::Value = serde_json::from_str(&own).unwrap_or_default();
    if let (Some(o), Ok(serde_json::Value::Object(r))) = (
        v.as_object_mut(),
        serde_json::from_str::<serde_json::Value>(&refs),
    ) {
        o.extend(r);
    }
    v.to_string()
}

fn create_scratch(name: &str, owner: &Role) -> Result<pg_sys::Oid, String> {
    if catalog::schema_oid(name).is_some() {
        // Never dropped: it is not this build's (a scratch schema lives only in its subtransaction).
        return Err(format!(
            "a schema named {} exists, which a snapshot build would use as its scratch schema: rename or drop it",
            quote_ident(name)
        ));
    }
    spi::run(&format!(
        "CREATE SCHEMA {} AUTHORIZATION {}",
        quote_ident(name),
        quote_ident(&owner.name)
    ));
    Ok(catalog::schema_oid(name).expect("scratch schema just created"))
}

fn first(list: &[String], n: usize) -> String {
    let mut s = list.iter().take(n).cloned().collect::<Vec<_>>().join("; ");
    if list.len() > n {
        s.push_str(&format!("; and {} more", list.len() - n));
    }
    s
}

/// A scratch schema's name: `prefix` and `bytes` random bytes in hex, unpredictable (nobody can
/// prepare a schema of that name, or tell one build's from another's by it).
fn scratch_name(prefix: &str, bytes: usize) -> String {
    let mut bytes = vec![0u8; bytes];
    // SAFETY: fills the buffer it is given.
    let ok = unsafe { pg_sys::pg_strong_random(bytes.as_mut_ptr().cast(), bytes.len()) };
    if !ok {
        // SAFETY: reads the clock; only when the strong source failed (never seen).
        let now = unsafe { pg_sys::GetCurrentTimestamp() };
        for (b, n) in bytes.iter_mut().zip(now.to_le_bytes().iter().cycle()) {
            *b = *n;
        }
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// A migration of the set as the proof's text rules read it: split once per build.
struct Read {
    label: String,
    /// Its text without comments.
    code: String,
    statements: Vec<sqltext::Statement>,
}

impl Read {
    fn all() -> Vec<Read> {
        known_set::known_set()
            .into_iter()
            .map(|m| Read {
                label: m.label(),
                code: sqltext::without_comments(&m.sql),
                statements: sqltext::split_statements(&m.sql).unwrap_or_default(),
            })
            .collect()
    }

    fn words_and_text(&self) -> impl Iterator<Item = (&[String], &str)> {
        self.statements
            .iter()
            .map(|s| (s.words.as_slice(), s.text.as_str()))
    }
}

/// Why the rows the migrations leave depend on when the migrations run (the text of the set
/// and the replayed schema tell): a statement that may write rows names a volatile function or
/// literal; a column default of a table with rows does; or a table with rows has a date/time
/// column and the set names the clock anywhere (a default dropped after the insert, a
/// function's body, CREATE TABLE AS: two replays in one build see the same clock).
fn rows_depend_on_the_run(model: &Schema, extras: &Extras, set: &[Read]) -> Option<String> {
    for m in set {
        if let Some(f) = rules::names_session(&m.code) {
            return Some(format!("migration {} uses {}", m.label, rules::shown(f)));
        }
    }
    for m in set {
        if let Some(f) = rules::volatile_write(m.words_and_text()) {
            return Some(format!("migration {} uses {}", m.label, rules::shown(f)));
        }
    }
    for t in extras.data.keys() {
        let Some(table) = model.tables.get(t) else {
            continue;
        };
        for c in &table.columns {
            let Some(d) = c.default.as_deref().or(c.generated.as_deref()) else {
                continue;
            };
            if let Some(f) = rules::names_volatile(d) {
                return Some(format!(
                    "the default of {}.{} uses {}",
                    quote_ident(t),
                    quote_ident(&c.name),
                    rules::shown(f)
                ));
            }
        }
        if let Some(c) = table.columns.iter().find(|c| rules::is_time_type(&c.ty)) {
            for m in set {
                if let Some(f) = rules::names_clock(&m.code) {
                    return Some(format!(
                        "{}.{} holds dates or times while migration {} uses {}",
                        quote_ident(t),
                        quote_ident(&c.name),
                        m.label,
                        rules::shown(f)
                    ));
                }
            }
        }
    }
    None
}

/// What differs between the replayed schema `x` and another built schema `y` (name,
/// description, extras), each name as `@tenant@`: the generator's comparison and the extras'.
fn differences(x: (&str, &Schema, &str), y: (&str, &Schema, &str), y_is: &str) -> Vec<String> {
    let mut out: Vec<String> = schema_diff::differences(x.1, y.1)
        .into_iter()
        .map(|(o, w)| {
            format!(
                "{o}: {}",
                w.replace("the first schema", "the replayed schema")
                    .replace("the second schema", y_is)
            )
        })
        .collect();
    let json = |(name, _, extras): (&str, &Schema, &str)| -> serde_json::Value {
        serde_json::from_str(&extras.replace(name, "@tenant@")).unwrap_or_default()
    };
    out.extend(
        rules::extras_differences(&json(x), &json(y))
            .into_iter()
            .map(|(o, w)| format!("{o}: {w}")),
    );
    out
}

/// Builds and proves the squashed form of `known` for tenants owned by `owner`, in a
/// subtransaction: `Ok(steps)`, or `Err(reason)` when new tenants must replay.
pub fn build(owner: &Role) -> Result<Vec<Step>, String> {
    if citus::present() {
        return Err("Citus is installed: new tenants replay their migrations, so that each table is distributed as the statement that creates it runs (docs/citus.md)".into());
    }
    catching(store::CANCEL, || {
        let (a, b) = (
            scratch_name("tenancy_snapshot_replay_", 8),
            scratch_name("tenancy_snapshot_squash_", 8),
        );
        let saved = spi::current_setting("client_min_messages").unwrap_or_default();
        spi::set_config("client_min_messages", "warning", true);
        let a_oid = create_scratch(&a, owner)?;
        let touched: BTreeSet<String> = store::touched(&[a_oid]).into_iter().collect();
        let writes: BTreeSet<String> = store::table_writes(&[a_oid]).into_iter().collect();
        let left_out = apply::build_schema(&a, |_| true);
        if let Some(e) = left_out.first() {
            return Err(format!(
                "a migration cannot run as {}: {}",
                quote_ident(&owner.name),
                e.message
            ));
        }
        let outside: Vec<String> = store::touched(&[a_oid])
            .into_iter()
            .filter(|t| !touched.contains(t))
            .collect();
        if !outside.is_empty() {
            return Err(format!(
                "the migrations change catalog entries outside the tenant's schema, which a snapshot would not repeat (catalog, key, transaction): {}",
                first(&outside, 5)
            ));
        }
        let written: Vec<String> = store::table_writes(&[a_oid])
            .into_iter()
            .filter(|w| !writes.contains(w))
            .collect();
        if !written.is_empty() {
            return Err(format!(
                "the migrations write rows of tables outside the tenant's schema, which a snapshot would not repeat (table, rows): {}",
                first(&written, 5)
            ));
        }
        let unprovable = store::unprovable(&a);
        if !unprovable.is_empty() {
            return Err(format!(
                "the migrations create what the snapshot's proof does not compare: {}",
                first(&unprovable, 5)
            ));
        }
        let model_a = describe(&a)?;
        let extras_a = extras_text(&a, owner);
        let parsed: Extras = serde_json::from_str(&extras_a)
            .map_err(|e| format!("cannot read the extras of the replayed schema: {e}"))?;
        let set = Read::all();
        for m in &set {
            if let Some(f) = rules::session_use(m.words_and_text()) {
                return Err(format!(
                    "migration {} uses {} outside a definition: what it builds may depend on when it runs, the session or the schema's name, which a snapshot would freeze to the build's",
                    m.label,
                    rules::shown(f)
                ));
            }
        }
        if !parsed.data.is_empty() {
            if let Some(why) = rows_depend_on_the_run(&model_a, &parsed, &set) {
                return Err(format!(
                    "the migrations leave rows in the tenant's tables and {why}: a replay gives each tenant its own values, a snapshot would give every tenant the build's"
                ));
            }
        }
        // What the text cannot tell (random() in a function, a volatile default dropped after
        // the insert, the schema's own name or OID in a row or in what a DO block builds):
        // replay the set a second time under a name of another prefix and length, and compare
        // everything, rows included.
        // The first scratch schema is gone by then (its description is read): a migration that
        // looks for it in pg_namespace sees it in one replay only.
        spi::run(&format!("DROP SCHEMA {} CASCADE", quote_ident(&a)));
        let twin = scratch_name("ts", 5);
        create_scratch(&twin, owner)?;
        apply::build_schema(&twin, |_| true);
        let model_twin = describe(&twin)?;
        let extras_twin = extras_text(&twin, owner);
        spi::run(&format!("DROP SCHEMA {} CASCADE", quote_ident(&twin)));
        let mine: serde_json::Value = serde_json::from_str(&extras_a).unwrap_or_default();
        let theirs: serde_json::Value = serde_json::from_str(&extras_twin).unwrap_or_default();
        if let Some(t) = rules::rows_differing(&mine, &theirs) {
            return Err(format!(
                "the migrations leave rows in {} that differ between two replays (values from random(), gen_random_uuid(), a sequence outside the schema, the schema's own name or an OID): a replay gives each tenant its own values, a snapshot would give every tenant the build's",
                quote_ident(&t)
            ));
        }
        let twin_diffs = differences(
            (&a, &model_a, &extras_a),
            (&twin, &model_twin, &extras_twin),
            "the second replay",
        );
        if !twin_diffs.is_empty() {
            return Err(format!(
                "two replays of the migrations under different schema names differ (what they build depends on the schema's name, its OID or chance): {}",
                first(&twin_diffs, 3)
            ));
        }
        let steps = rules::squash(&model_a, &parsed);
        create_scratch(&b, owner)?;
        run_batched(&b, owner, &steps);
        let model_b = describe(&b)?;
        let extras_b = extras_text(&b, owner);
        let diffs = differences(
            (&a, &model_a, &extras_a),
            (&b, &model_b, &extras_b),
            "the snapshot's schema",
        );
        spi::run(&format!("DROP SCHEMA {} CASCADE", quote_ident(&b)));
        spi::set_config("client_min_messages", &saved, true);
        if !diffs.is_empty() {
            return Err(format!(
                "a schema built from the squashed form differs from the replayed one (something the squashed form does not reproduce, such as which unique index a foreign key uses when several fit, or an order of creation PostgreSQL keeps): {}",
                first(&diffs, 5)
            ));
        }
        Ok(steps)
    })
}

/// Builds the snapshot for `owner` and stores it (or why there is none); returns the reason when
/// new tenants replay.
pub fn build_and_store(owner: &Role) -> Option<String> {
    store::lock_builds();
    let started = Instant::now();
    let known = known_set::known_versions();
    let fp = fingerprint(owner.oid, &known);
    let versions: Vec<String> = known.iter().map(|m| m.version.clone()).collect();
    let result = build(owner);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(steps) => {
            let json = serde_json::to_string(&steps).unwrap_or_default();
            store::save(&fp, &owner.name, &versions, Some(&json), None, ms);
            None
        }
        Err(reason) => {
            store::save(&fp, &owner.name, &versions, None, Some(&reason), ms);
            Some(reason)
        }
    }
}

/// After the migration set changed (`add_migration`, `remove_migration`): rebuilds the stored
/// snapshot for its owner when the current role may act as that owner (a build runs the
/// migrations as it); otherwise the snapshot stays, stale and unused, until
/// `tenancy.build_snapshot()` is run by someone who may. Nothing when no snapshot was ever built.
pub fn rebuild_after_change() {
    let Some(s) = store::load() else { return };
    let Some(owner) = catalog::role_by_name(&s.owner) else {
        return;
    };
    if catalog::has_privileges_of(identity::current_user(), owner.oid) {
        if let Some(reason) = build_and_store(&owner) {
            pgrx::notice!("new tenants replay their migrations: {reason}");
        }
    }
}

thread_local! {
    /// The parsed steps of the stored snapshot, by its row version: a backend that provisions
    /// many tenants reads and parses them once per build.
    static STEPS: std::cell::RefCell<Option<(String, std::rc::Rc<Vec<Step>>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The steps of a proven snapshot usable for a new tenant owned by `owner` that needs exactly
/// `todo` (the whole set, as read before [`store::lock_use`]), if there is one. The fingerprint
/// is computed from the set as it is now, so a migration removed meanwhile makes it differ.
fn usable(owner: &Role, todo: &[Migration]) -> Option<std::rc::Rc<Vec<Step>>> {
    let s = store::load()?;
    if !s.proven
        || s.owner != owner.name
        || s.versions.len() != todo.len()
        || s.versions.iter().zip(todo).any(|(v, m)| *v != m.version)
    {
        return None;
    }
    store::lock_use(false);
    if s.fingerprint != fingerprint(owner.oid, &known_set::known_versions()) {
        return None;
    }
    if let Some(steps) = STEPS.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(k, _)| *k == s.row_version)
            .map(|(_, v)| v.clone())
    }) {
        return Some(steps);
    }
    let steps: std::rc::Rc<Vec<Step>> =
        std::rc::Rc::new(serde_json::from_str(&store::steps(&s.row_version)?).ok()?);
    STEPS.with(|c| *c.borrow_mut() = Some((s.row_version, steps.clone())));
    Some(steps)
}

/// Runs the steps of a snapshot in `schema` as `owner`, inside a security-restricted operation
/// with the tenant's search_path, as a migration's statements run; consecutive plain statements
/// go as one multi-statement string (the proof's second scratch is built the same way).
fn run_batched(schema: &str, owner: &Role, steps: &[Step]) {
    identity::as_tenant_owner(owner.oid, &apply::tenant_search_path(schema), || {
        let mut batch = String::new();
        let flush = |batch: &mut String| {
            if !batch.is_empty() {
                spi::run(batch);
                batch.clear();
            }
        };
        for step in steps {
            let sql = sqltext::substitute_tenant(&step.sql, schema).or_raise();
            let sql = rules::statement(step, &sql);
            match &step.json {
                Some(rows) => {
                    flush(&mut batch);
                    spi::run_with_args(&sql, &[rows.as_str().into()]).or_raise()
                }
                None => {
                    batch.push_str(&sql);
                    batch.push_str(";\n");
                }
            }
        }
        flush(&mut batch);
    })
}

/// Builds a new, empty tenant from the snapshot when one is usable (see the module's
/// documentation): whether it did. The caller has locked the tenant and checked the authors;
/// the migrations' text is never read.
pub fn provision(t: &Tenant, owner: &Role, todo: &[Migration]) -> bool {
    // At REPEATABLE READ and SERIALIZABLE the set is read with the transaction's snapshot even
    // after the lock below, so a migration removed meanwhile would look present: replay, whose
    // row locks raise a serialization failure instead (the hostile review's F1).
    // SAFETY: reads the transaction's isolation level.
    let xact_snapshot = unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32;
    if !settings::USE_SNAPSHOT.get() || citus::present() || xact_snapshot {
        return false;
    }
    let Some(steps) = usable(owner, todo) else {
        return false;
    };
    if !store::schema_is_empty(t.oid) {
        return false;
    }
    let started = Instant::now();
    match catching(store::MOMENTARY, || {
        run_batched(&t.name, owner, &steps);
        Ok(())
    }) {
        Ok(()) => {
            registry::record_snapshot(&t.name, todo, started.elapsed().as_secs_f64());
            true
        }
        Err(e) => {
            pgrx::warning!(
                "tenant {}: the snapshot could not be applied ({e}); replaying its migrations instead (SELECT * FROM tenancy.build_snapshot({}) rebuilds the snapshot)",
                quote_ident(&t.name),
                crate::rules::names::quote_literal(&owner.name)
            );
            false
        }
    }
}
