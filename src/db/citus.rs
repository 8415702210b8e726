//! Citus schema-based sharding (docs/citus.md): a tenant is a *distributed schema*, every table of
//! it a single-shard table of the schema's colocation group, on one worker.
//!
//! Citus converts a new table of a distributed schema into such a table only for a top-level
//! `CREATE TABLE`; pg_tenancy creates tables through SPI, so it does that conversion itself:
//! after each statement of a migration applied to a tenant, the tables that statement created are
//! distributed before the next statement runs, in the same transaction ([`Distribution`]). A new
//! tenant's schema is created as a plain schema (Citus would otherwise register it, empty, as a
//! distributed schema that later tables cannot be colocated with) and distributed with its first
//! table.
//!
//! Nothing here references a Citus object unless the `citus` extension is installed in the
//! database ([`present`]); every Citus call is dynamic SQL.

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::db::report::{self, Caught, OrRaise};
use crate::db::settings::{self, Distribute};
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::names::{quote_ident, quote_literal};

/// Whether the `citus` extension is installed in this database.
pub fn present() -> bool {
    spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension \
         WHERE extname OPERATOR(pg_catalog.=) 'citus')",
        &[],
    )
    .unwrap_or(false)
}

/// Whether this server is the Citus coordinator (with Citus installed).
fn is_coordinator() -> bool {
    spi::get_one::<bool>("SELECT pg_catalog.citus_is_coordinator()", &[]).unwrap_or(false)
}

/// Whether tenants are distributed here: Citus installed, this server its coordinator, and
/// `tenancy.distribute` = `on`, or `auto` (the default) with `citus.enable_schema_based_sharding`
/// on.
pub fn distributing() -> bool {
    let setting = settings::distribute();
    if setting == Distribute::Off || !present() || !is_coordinator() {
        return false;
    }
    setting == Distribute::On
        || spi::current_setting("citus.enable_schema_based_sharding").as_deref() == Some("on")
}

/// Refuses (0A000) to create or migrate tenants on a Citus worker: tenant schemas live on the
/// coordinator's metadata, and Citus refuses tables in distributed schemas created on a worker.
pub fn refuse_on_worker(function: &str) {
    if present() && !is_coordinator() {
        report::raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("tenancy.{function} cannot run on a Citus worker node"),
            )
            .detail("On Citus, tenants are created, migrated, renamed and dropped on the coordinator, which keeps the registry and distributes each tenant schema to a worker.")
            .hint("Connect to the coordinator and run it there."),
        )
    }
}

/// Runs `f` (a `CREATE SCHEMA` of pg_tenancy's) with Citus's schema-based sharding off, so that
/// Citus does not register the new, empty schema as a distributed schema: pg_tenancy distributes
/// a tenant's schema with its first table, and never a scratch schema.
pub fn creating_plain_schema<R>(f: impl FnOnce() -> R) -> R {
    if present() {
        settings::with_local(&[("citus.enable_schema_based_sharding", "off")], f)
    } else {
        f()
    }
}

/// Local (not distributed) tables, partitioned tables and foreign tables of schema `nsp`, oldest
/// first, leaving out Citus's shards (present in a schema when the coordinator holds shards).
fn local_tables(nsp: pg_sys::Oid) -> Vec<(pg_sys::Oid, bool)> {
    Spi::connect(|c| {
        c.select(
            "SELECT c.oid, c.relispartition FROM pg_catalog.pg_class c \
             WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 \
               AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog.\"char\"[]) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d \
                               WHERE d.logicalrelid OPERATOR(pg_catalog.=) c.oid) \
               AND NOT pg_catalog.relation_is_a_known_shard(c.oid) \
             ORDER BY c.oid",
            None,
            &[DatumWithOid::from(nsp)],
        )
        .or_raise()
        .map(|r| {
            (
                r.get::<pg_sys::Oid>(1)
                    .or_raise()
                    .unwrap_or(pg_sys::InvalidOid),
                r.get::<bool>(2).or_raise().unwrap_or(false),
            )
        })
        .collect()
    })
}

/// Whether schema `nsp` is a Citus distributed schema.
fn is_distributed(nsp: pg_sys::Oid) -> bool {
    spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_schema s \
                        WHERE s.schemaid OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace)",
        &[DatumWithOid::from(nsp)],
    )
    .unwrap_or(false)
}

/// A table of distributed schema `nsp` in the schema's colocation group, to colocate new ones with.
fn anchor(nsp: pg_sys::Oid) -> Option<String> {
    spi::get_one::<String>(
        "SELECT d.logicalrelid::pg_catalog.regclass::pg_catalog.text \
         FROM pg_catalog.pg_dist_partition d \
         JOIN pg_catalog.pg_dist_schema s ON s.colocationid OPERATOR(pg_catalog.=) d.colocationid \
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.logicalrelid \
         WHERE s.schemaid OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace \
           AND c.relnamespace OPERATOR(pg_catalog.=) $1 \
         ORDER BY d.logicalrelid LIMIT 1",
        &[DatumWithOid::from(nsp)],
    )
}

fn qualified(rel: pg_sys::Oid) -> String {
    spi::get_one::<String>(
        "SELECT $1::pg_catalog.regclass::pg_catalog.text",
        &[DatumWithOid::from(rel)],
    )
    .unwrap_or_else(|| rel.to_u32().to_string())
}

/// What a tenant's migration run needs to distribute the tables its statements create: the
/// tenant's schema, the local tables it had before the run (left alone: a tenant created before
/// distribution was on is distributed by `reconcile`, not in the middle of a migration), and
/// whether a plain schema without tables may be distributed now ([`distributing`]).
pub struct Distribution {
    nsp: pg_sys::Oid,
    before: Vec<pg_sys::Oid>,
    may_distribute_schema: bool,
}

impl Distribution {
    /// For a run on tenant schema `nsp` on a Citus coordinator. Tables created in a schema that
    /// is already distributed are always distributed, whatever the settings of the session (or
    /// fleet worker) running the migration: a local table in a distributed schema is a defect.
    pub fn for_run(nsp: pg_sys::Oid) -> Option<Distribution> {
        if !present() || !is_coordinator() {
            return None;
        }
        let may_distribute_schema = distributing();
        if !may_distribute_schema && !is_distributed(nsp) {
            return None;
        }
        let before = local_tables(nsp).into_iter().map(|(t, _)| t).collect();
        Some(Distribution {
            nsp,
            before,
            may_distribute_schema,
        })
    }

    /// Distributes the tables the statement just run created (statement `number` of migration
    /// `label` in tenant `tenant`), as the tenant's owner (Citus requires the tables' owner).
    /// The first table of a plain schema distributes the schema; later ones join its colocation
    /// group. Partitions follow their parent. What Citus refuses fails the migration (0A000 for
    /// Citus's own internal-error code) naming the table.
    pub fn after_statement(&self, tenant: &str, label: &str, number: usize) {
        let new: Vec<(pg_sys::Oid, bool)> = local_tables(self.nsp)
            .into_iter()
            .filter(|(t, _)| !self.before.contains(t))
            .collect();
        if new.is_empty() {
            return;
        }
        let first = qualified(new[0].0);
        if !is_distributed(self.nsp) {
            if !self.before.is_empty() || !self.may_distribute_schema {
                return; // a tenant that is not distributed stays so (verify reports it)
            }
            let nsp = self.nsp;
            distribute_call(tenant, label, number, &first, move || {
                spi::run_with_args(
                    "SELECT pg_catalog.citus_schema_distribute($1::pg_catalog.regnamespace)",
                    &[DatumWithOid::from(nsp)],
                )
            });
            return;
        }
        let Some(anchor) = anchor(self.nsp) else {
            report::raise(
                TenancyError::new(
                    SqlState::FeatureNotSupported,
                    format!(
                        "tenant {}: migration {label}, statement {number}: table {first} cannot be distributed: the distributed schema has no distributed table to colocate it with",
                        quote_ident(tenant)
                    ),
                )
                .hint(format!(
                    "Citus keeps an empty distributed schema's colocation group out of reach of SQL. Undistribute the empty schema first (SELECT citus_schema_undistribute({})) and migrate again: pg_tenancy distributes it with its first table.",
                    quote_literal(&quote_ident(tenant))
                )),
            )
        };
        for (t, is_partition) in new {
            // A partition of a distributed table is distributed with it by Citus.
            if is_partition && local_tables(self.nsp).iter().all(|(l, _)| *l != t) {
                continue;
            }
            let name = qualified(t);
            let anchor = anchor.clone();
            distribute_call(tenant, label, number, &name, move || {
                spi::run_with_args(
                    "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, NULL, colocate_with => $2)",
                    &[DatumWithOid::from(t), anchor.as_str().into()],
                )
            });
        }
    }
}

/// Runs one Citus distribution call for `table`, its notices silenced; an error names the
/// tenant, migration, statement and table, with Citus's message as the detail.
fn distribute_call(
    tenant: &str,
    label: &str,
    number: usize,
    table: &str,
    call: impl FnOnce() -> Result<(), pgrx::spi::SpiError> + std::panic::UnwindSafe,
) {
    use pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR;
    report::with_context(
        || settings::with_local(&[("client_min_messages", "warning")], || call().or_raise()),
        |c| {
            Caught {
            code: if c.code == ERRCODE_INTERNAL_ERROR {
                pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED
            } else {
                c.code
            },
            message: format!(
                "tenant {}: migration {label}, statement {number}: Citus cannot distribute table {table}",
                quote_ident(tenant)
            ),
            detail: Some(match c.detail {
                Some(d) => format!("{}\n{d}", c.message),
                None => c.message.clone(),
            }),
            hint: Some(c.hint.unwrap_or_else(|| {
                format!(
                    "On Citus every table of a tenant is a table of the tenant's distributed schema (docs/citus.md, \"Limits\"): change migration {label} so that Citus can distribute it (no inheritance, no foreign tables, foreign keys only to tables of the tenant or to reference tables: SELECT create_reference_table('<shared table>')). The tenant stays at its previous version."
                )
            })),
        }
        },
    )
}
