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
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;

use crate::db::report::{self, Caught, OrRaise};
use crate::db::settings::{self, Distribute};
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::names::{quote_ident, quote_literal};

/// What this server is to Citus.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// No Citus in this database.
    Absent,
    Coordinator,
    Worker,
}

thread_local! {
    /// [`Role`] as found in the transaction that started at this time.
    static ROLE: std::cell::Cell<(pg_sys::TimestampTz, Role)> =
        const { std::cell::Cell::new((0, Role::Absent)) };
}

/// This server's [`Role`], looked up once per transaction: every write path asks.
fn role() -> Role {
    // SAFETY: reads this backend's transaction state.
    let started = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let (at, role) = ROLE.with(|c| c.get());
    if at == started && started != 0 {
        return role;
    }
    // SAFETY: a catalog lookup by name; missing_ok.
    let installed =
        unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) } != pg_sys::InvalidOid;
    let role = if !installed {
        Role::Absent
    } else if spi::get_one::<bool>("SELECT pg_catalog.citus_is_coordinator()", &[]).unwrap_or(false)
    {
        Role::Coordinator
    } else {
        Role::Worker
    };
    ROLE.with(|c| c.set((started, role)));
    role
}

/// Whether the `citus` extension is installed in this database.
pub fn present() -> bool {
    role() != Role::Absent
}

/// Whether this server is the Citus coordinator (with Citus installed).
pub fn is_coordinator() -> bool {
    role() == Role::Coordinator
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

/// Whether tenants are distributed here by this session's settings ([`distributing`]) or by the
/// settings a session starts with (database, role and server defaults: `pg_settings.reset_val`),
/// so that what `verify` and `reconcile` see does not depend on a `SET` of the caller's.
fn distributed_here() -> bool {
    if distributing() {
        return true;
    }
    if !is_coordinator() {
        return false;
    }
    let reset = |name: &str| {
        spi::get_one::<String>(
            "SELECT s.reset_val FROM pg_catalog.pg_settings s WHERE s.name OPERATOR(pg_catalog.=) $1",
            &[name.into()],
        )
    };
    match reset("tenancy.distribute").as_deref() {
        Some("off") => false,
        Some("on") => true,
        _ => reset("citus.enable_schema_based_sharding").as_deref() == Some("on"),
    }
}

/// Refuses (0A000) to change tenants on a Citus worker: tenants are registered, migrated, renamed
/// and dropped on the coordinator (Citus propagates `CREATE EXTENSION pg_tenancy` to the workers,
/// whose registry stays empty), and Citus refuses most of it there anyway.
pub fn refuse_on_worker(function: &str) {
    if role() == Role::Worker {
        report::raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("tenancy.{function} cannot run on a Citus worker node"),
            )
            .detail("On Citus, tenants are created, registered, migrated, renamed and dropped on the coordinator, which keeps the registry and distributes each tenant schema to a worker; the pg_tenancy of a worker has no tenants.")
            .hint("Connect to the coordinator and run it there."),
        )
    }
}

/// Runs `f` (a `CREATE SCHEMA` of pg_tenancy's) with Citus's schema-based sharding off, so that
/// Citus does not register the new, empty schema as a distributed schema: pg_tenancy distributes
/// a tenant's schema with its first table.
pub fn creating_plain_schema<R>(f: impl FnOnce() -> R) -> R {
    if present() {
        settings::with_local(
            &[
                ("citus.enable_schema_based_sharding", "off"),
                ("citus.enable_ddl_propagation", "off"),
            ],
            f,
        )
    } else {
        f()
    }
}

/// Runs `f` (a scratch build: `create_template`, the generator, `verify(deep => true)`) as a
/// coordinator-only affair: no distributed schema, no Citus local tables made of tables with a
/// foreign key to a reference table, nothing propagated to the workers. A scratch schema is
/// described and dropped, never used by Citus.
pub fn local_only<R>(f: impl FnOnce() -> R) -> R {
    if present() {
        settings::with_local(
            &[
                ("citus.enable_schema_based_sharding", "off"),
                ("citus.enable_local_reference_table_foreign_keys", "off"),
                ("citus.enable_ddl_propagation", "off"),
            ],
            f,
        )
    } else {
        f()
    }
}

/// Local tables, partitioned tables and foreign tables of schema `nsp`, oldest first: in no Citus
/// colocation group (plain tables, and Citus local tables, which Citus makes of a table with a
/// foreign key to a reference table), leaving out Citus's shards (in a schema of a coordinator
/// that holds shards).
fn local_tables(nsp: pg_sys::Oid) -> Vec<(pg_sys::Oid, bool)> {
    Spi::connect(|c| {
        c.select(
            "SELECT c.oid, c.relispartition FROM pg_catalog.pg_class c \
             WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 \
               AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog.\"char\"[]) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d \
                               WHERE d.logicalrelid OPERATOR(pg_catalog.=) c.oid \
                                 AND d.colocationid OPERATOR(pg_catalog.<>) 0) \
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
pub fn is_distributed(nsp: pg_sys::Oid) -> bool {
    spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_schema s \
                        WHERE s.schemaid OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace)",
        &[DatumWithOid::from(nsp)],
    )
    .unwrap_or(false)
}

/// A table of distributed schema `nsp` in the schema's colocation group, to colocate new ones with.
fn anchor(nsp: pg_sys::Oid) -> Option<String> {
    // Schema-qualified and quoted whatever search_path is in effect (regclass's output is not):
    // Citus resolves colocate_with by name.
    spi::get_one::<String>(
        "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' \
                OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) \
         FROM pg_catalog.pg_dist_partition d \
         JOIN pg_catalog.pg_dist_schema s ON s.colocationid OPERATOR(pg_catalog.=) d.colocationid \
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.logicalrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
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
/// whether its plain schema may be distributed with its first table: when tenants are distributed
/// here ([`distributing`]), or when it was distributed when the run began (a migration emptied and
/// refilled it).
pub struct Distribution {
    nsp: pg_sys::Oid,
    before: Vec<pg_sys::Oid>,
    may_distribute_schema: bool,
}

/// Whether schema `nsp` has any table (local or distributed; not counting shards).
fn has_tables(nsp: pg_sys::Oid) -> bool {
    spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c \
                        WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 \
                          AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog.\"char\"[]) \
                          AND NOT pg_catalog.relation_is_a_known_shard(c.oid))",
        &[DatumWithOid::from(nsp)],
    )
    .unwrap_or(false)
}

impl Distribution {
    /// For a run on tenant schema `nsp` on a Citus coordinator. Tables created in a schema that
    /// is already distributed are always distributed, whatever the settings of the session (or
    /// fleet worker) running the migration: a local table in a distributed schema is a defect.
    pub fn for_run(nsp: pg_sys::Oid) -> Option<Distribution> {
        if !is_coordinator() {
            return None;
        }
        let was_distributed = is_distributed(nsp);
        let may_distribute_schema = was_distributed || distributing();
        if !may_distribute_schema {
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
    /// `label` in tenant `tenant`), as the tenant's owner (the migration's identity; Citus
    /// requires the tables' owner). The first table of a plain schema distributes the schema;
    /// later ones join its colocation group. Partitions follow their parent. A distributed
    /// schema left without tables is undistributed (Citus keeps an empty distributed schema's
    /// colocation group out of reach of SQL, so no later table could join it); its next table
    /// distributes it again. What Citus refuses fails the migration (0A000) naming the table.
    pub fn after_statement(&self, tenant: &str, label: &str, number: usize) {
        let new: Vec<(pg_sys::Oid, bool)> = local_tables(self.nsp)
            .into_iter()
            .filter(|(t, _)| !self.before.contains(t))
            .collect();
        let place = format!(
            "tenant {}: migration {label}, statement {number}",
            quote_ident(tenant)
        );
        let fix = format!(
            "Change migration {label} accordingly; tenant {} stays at its previous version.",
            quote_ident(tenant)
        );
        let distributed = is_distributed(self.nsp);
        if new.is_empty() {
            if distributed && !has_tables(self.nsp) {
                let nsp = self.nsp;
                distribute_call(&place, "the emptied schema", &fix, move || {
                    spi::run_with_args(
                        "SELECT pg_catalog.citus_schema_undistribute($1::pg_catalog.regnamespace)",
                        &[DatumWithOid::from(nsp)],
                    )
                });
            }
            return;
        }
        let first = qualified(new[0].0);
        if !distributed {
            if !self.before.is_empty() || !self.may_distribute_schema {
                return; // a tenant that is not distributed stays so (verify reports it)
            }
            let nsp = self.nsp;
            distribute_call(&place, &format!("table {first}"), &fix, move || {
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
                        "{place}: table {first} cannot be distributed: it was created in the same statement that dropped every distributed table of the tenant, leaving nothing to colocate it with"
                    ),
                )
                .hint(format!(
                    "Drop the old tables and create the new ones in separate statements of migration {label} (pg_tenancy undistributes a schema a statement empties, and distributes it again with its next table); tenant {} stays at its previous version.",
                    quote_ident(tenant)
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
            distribute_call(&place, &format!("table {name}"), &fix, move || {
                spi::run_with_args(
                    "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, NULL, colocate_with => $2)",
                    &[DatumWithOid::from(t), anchor.as_str().into()],
                )
            });
        }
    }
}

/// Runs one Citus distribution call for `table` (its notices silenced); an error says where
/// (`place`: the tenant and, in a migration, the migration and statement) and what, with Citus's
/// message as the detail and 0A000 for Citus's own internal-error code.
fn distribute_call(
    place: &str,
    table: &str,
    fix: &str,
    call: impl FnOnce() -> Result<(), pgrx::spi::SpiError> + std::panic::UnwindSafe,
) {
    report::with_context(
        || settings::with_local(&[("client_min_messages", "warning")], || call().or_raise()),
        |c| {
            let (code, hint) = citus_error(c.code, fix);
            Caught {
                code,
                message: format!("{place}: Citus cannot distribute {table}"),
                detail: Some(
                    [
                        Some(c.message.clone()),
                        c.detail.clone(),
                        c.hint.map(|h| format!("Citus's hint: {h}")),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("\n"),
                ),
                hint: Some(hint),
            }
        },
    )
}

/// The SQLSTATE and hint pg_tenancy gives an error Citus raised while distributing a tenant: the
/// privilege and connection errors keep their codes (with what to check), every other refusal is
/// `0A000` (Citus raises most with the internal-error code) with the Citus limits and `fix`.
pub fn citus_error(code: PgSqlErrorCode, fix: &str) -> (PgSqlErrorCode, String) {
    use PgSqlErrorCode::*;
    if code == ERRCODE_INSUFFICIENT_PRIVILEGE {
        return (code, format!("Citus distributes a tenant's tables as the tenant's owner, which must own them and be able to use what they reference (REFERENCES on shared tables). {fix}"));
    }
    if is_connection_error(code) {
        return (code, format!("Citus runs the tenant's shard commands on its worker as the tenant's owner: that role must exist and be able to log in on every worker (SELECT * FROM tenancy.verify() lists the roles missing there; docs/citus.md). {fix}"));
    }
    (
        ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("On Citus every table of a tenant is a table of the tenant's distributed schema (docs/citus.md, \"Limits\"): no inheritance, no foreign tables, foreign keys only to tables of the tenant or to reference tables (SELECT create_reference_table('<shared table>')). {fix}"),
    )
}

/// Whether `code` is of class 08 (connection exception), as Citus reports a worker it cannot
/// reach or log in to.
pub fn is_connection_error(code: PgSqlErrorCode) -> bool {
    use PgSqlErrorCode::*;
    matches!(
        code,
        ERRCODE_CONNECTION_EXCEPTION
            | ERRCODE_CONNECTION_DOES_NOT_EXIST
            | ERRCODE_CONNECTION_FAILURE
            | ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION
            | ERRCODE_SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION
            | ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN
            | ERRCODE_PROTOCOL_VIOLATION
    )
}

/// Each distributed tenant schema with the worker holding its shards (`host:port`); none without
/// Citus.
pub fn tenant_nodes() -> Vec<(String, String)> {
    if !present() {
        return Vec::new();
    }
    spi::rows_text_text(
        "SELECT n.nspname::pg_catalog.text, \
                d.nodename OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) d.nodeport::pg_catalog.text \
         FROM pg_catalog.pg_dist_schema s \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) s.schemaid::pg_catalog.oid \
         CROSS JOIN LATERAL ( \
             SELECT p.groupid FROM pg_catalog.pg_dist_partition t \
             JOIN pg_catalog.pg_dist_shard sh ON sh.logicalrelid OPERATOR(pg_catalog.=) t.logicalrelid \
             JOIN pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) sh.shardid \
             WHERE t.colocationid OPERATOR(pg_catalog.=) s.colocationid LIMIT 1) g \
         JOIN pg_catalog.pg_dist_node d ON d.groupid OPERATOR(pg_catalog.=) g.groupid \
          AND d.noderole OPERATOR(pg_catalog.=) 'primary'",
    )
}

/// The node (`host:port`) holding distributed tenant schema `name`'s shards, if any.
pub fn node_of(name: &str) -> Option<String> {
    tenant_nodes()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, node)| node)
}

/// A local table of a distributed tenant schema: its tenant, the table, the schema's OID and
/// whether it is a partition whose parent is local too (distributed with it).
pub struct Stray {
    pub tenant: String,
    pub table: String,
    pub nsp: pg_sys::Oid,
    pub follows_parent: bool,
}

/// The local tables (as in [`local_tables`]) of each tenant schema.
const TENANT_TABLES: &str = "FROM tenancy._tenant_schemas t \
     JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) t.schema_oid \
      AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog.\"char\"[]) \
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d \
                      WHERE d.logicalrelid OPERATOR(pg_catalog.=) c.oid \
                        AND d.colocationid OPERATOR(pg_catalog.<>) 0) \
      AND NOT pg_catalog.relation_is_a_known_shard(c.oid)";

/// Local tables in distributed tenant schemas (what `verify` reports and `reconcile` distributes).
pub fn strays() -> Vec<Stray> {
    if !present() {
        return Vec::new();
    }
    Spi::connect(|c| {
        c.select(
            &format!(
                "SELECT t.schema_name::pg_catalog.text, c.oid::pg_catalog.regclass::pg_catalog.text, \
                        t.schema_oid, \
                        c.relispartition AND EXISTS ( \
                            SELECT FROM pg_catalog.pg_inherits i \
                            WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid \
                              AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d \
                                              WHERE d.logicalrelid OPERATOR(pg_catalog.=) i.inhparent \
                                                AND d.colocationid OPERATOR(pg_catalog.<>) 0)) \
                 {TENANT_TABLES} \
                 WHERE EXISTS (SELECT FROM pg_catalog.pg_dist_schema s \
                               WHERE s.schemaid::pg_catalog.oid OPERATOR(pg_catalog.=) t.schema_oid) \
                 ORDER BY 1, c.oid"
            ),
            None,
            &[],
        )
        .or_raise()
        .map(|r| Stray {
            tenant: r.get::<String>(1).or_raise().unwrap_or_default(),
            table: r.get::<String>(2).or_raise().unwrap_or_default(),
            nsp: r.get::<pg_sys::Oid>(3).or_raise().unwrap_or(pg_sys::InvalidOid),
            follows_parent: r.get::<bool>(4).or_raise().unwrap_or(false),
        })
        .collect()
    })
}

/// Tenants with tables whose schema is not distributed, while tenants are distributed here:
/// each with its number of tables.
pub fn undistributed() -> Vec<(String, i64)> {
    if !distributed_here() {
        return Vec::new();
    }
    Spi::connect(|c| {
        c.select(
            &format!(
                "SELECT t.schema_name::pg_catalog.text, pg_catalog.count(*) {TENANT_TABLES} \
                 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_dist_schema s \
                                   WHERE s.schemaid::pg_catalog.oid OPERATOR(pg_catalog.=) t.schema_oid) \
                 GROUP BY 1 ORDER BY 1"
            ),
            None,
            &[],
        )
        .or_raise()
        .map(|r| {
            (
                r.get::<String>(1).or_raise().unwrap_or_default(),
                r.get::<i64>(2).or_raise().unwrap_or(0),
            )
        })
        .collect()
    })
}

/// Shared tables (outside tenant schemas) that foreign keys of distributed tenants (of every
/// tenant, while tenants are distributed here) reference and that are not reference tables: the
/// table, how many tenants reference it, and the first of them.
fn non_reference_targets() -> Vec<(String, i64, String)> {
    Spi::connect(|c| {
        c.select(
            "SELECT k.confrelid::pg_catalog.regclass::pg_catalog.text, \
                    pg_catalog.count(DISTINCT t.schema_name), pg_catalog.min(t.schema_name::pg_catalog.text) \
             FROM tenancy._tenant_schemas t \
             JOIN pg_catalog.pg_constraint k ON k.connamespace OPERATOR(pg_catalog.=) t.schema_oid \
              AND k.contype OPERATOR(pg_catalog.=) 'f' \
             JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) k.confrelid \
             WHERE NOT EXISTS (SELECT FROM tenancy._tenant_schemas o \
                               WHERE o.schema_oid OPERATOR(pg_catalog.=) r.relnamespace) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d \
                               WHERE d.logicalrelid OPERATOR(pg_catalog.=) k.confrelid \
                                 AND d.partmethod OPERATOR(pg_catalog.=) 'n' \
                                 AND d.repmodel OPERATOR(pg_catalog.=) 't') \
               AND ($1 OR EXISTS (SELECT FROM pg_catalog.pg_dist_schema s \
                                  WHERE s.schemaid::pg_catalog.oid OPERATOR(pg_catalog.=) t.schema_oid)) \
             GROUP BY 1 ORDER BY 1",
            None,
            &[distributed_here().into()],
        )
        .or_raise()
        .map(|r| {
            (
                r.get::<String>(1).or_raise().unwrap_or_default(),
                r.get::<i64>(2).or_raise().unwrap_or(0),
                r.get::<String>(3).or_raise().unwrap_or_default(),
            )
        })
        .collect()
    })
}

/// A table outside tenant schemas that a foreign key of tenant schema `nsp` references and that is
/// not a reference table (Citus refuses to distribute the schema then).
fn non_reference_target_of(nsp: pg_sys::Oid) -> Option<String> {
    spi::get_one::<String>(
        "SELECT k.confrelid::pg_catalog.regclass::pg_catalog.text \
         FROM pg_catalog.pg_constraint k \
         JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) k.confrelid \
         WHERE k.connamespace OPERATOR(pg_catalog.=) $1 AND k.contype OPERATOR(pg_catalog.=) 'f' \
           AND r.relnamespace OPERATOR(pg_catalog.<>) $1 \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d \
                           WHERE d.logicalrelid OPERATOR(pg_catalog.=) k.confrelid \
                             AND d.partmethod OPERATOR(pg_catalog.=) 'n' \
                             AND d.repmodel OPERATOR(pg_catalog.=) 't') \
         ORDER BY 1 LIMIT 1",
        &[DatumWithOid::from(nsp)],
    )
}

/// The owners of distributed tenants (of every tenant, while tenants are distributed here), with
/// how many tenants each owns.
fn tenant_owners() -> Vec<(String, i64)> {
    Spi::connect(|c| {
        c.select(
            "SELECT pg_catalog.pg_get_userbyid(n.nspowner)::pg_catalog.text, pg_catalog.count(*) \
             FROM tenancy._tenant_schemas t \
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.schema_oid \
             WHERE $1 OR EXISTS (SELECT FROM pg_catalog.pg_dist_schema s \
                                 WHERE s.schemaid::pg_catalog.oid OPERATOR(pg_catalog.=) t.schema_oid) \
             GROUP BY 1 ORDER BY 1",
            None,
            &[distributed_here().into()],
        )
        .or_raise()
        .map(|r| {
            (
                r.get::<String>(1).or_raise().unwrap_or_default(),
                r.get::<i64>(2).or_raise().unwrap_or(0),
            )
        })
        .collect()
    })
}

/// Tenant owners that do not exist, or cannot log in, on a worker (Citus runs a tenant's shard
/// commands there as its owner): one problem per owner and worker, and one per worker that could
/// not be asked.
fn owner_problems() -> Vec<String> {
    let owners = tenant_owners();
    if owners.is_empty() {
        return Vec::new();
    }
    // One character per owner, in the order asked ('y' can log in, 'n' cannot, '-' missing): role
    // names may contain any character, so none is parsed out of the answer.
    let list = owners
        .iter()
        .map(|(o, _)| quote_literal(o))
        .collect::<Vec<_>>()
        .join(", ");
    let command = format!(
        "SELECT coalesce(pg_catalog.string_agg(CASE WHEN r.rolname IS NULL THEN '-' WHEN r.rolcanlogin THEN 'y' ELSE 'n' END, '' ORDER BY o.i), '') \
         FROM pg_catalog.unnest(ARRAY[{list}]::pg_catalog.text[]) WITH ORDINALITY AS o(name, i) \
         LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) o.name"
    );
    let rows: Vec<(String, bool, String)> = Spi::connect(|c| {
        c.select(
            "SELECT w.nodename OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) w.nodeport::pg_catalog.text, \
                    w.success, coalesce(w.result, '') \
             FROM pg_catalog.run_command_on_workers($1) w ORDER BY 1",
            None,
            &[command.as_str().into()],
        )
        .or_raise()
        .map(|r| {
            (
                r.get::<String>(1).or_raise().unwrap_or_default(),
                r.get::<bool>(2).or_raise().unwrap_or(false),
                r.get::<String>(3).or_raise().unwrap_or_default(),
            )
        })
        .collect()
    });
    let mut out = Vec::new();
    for (worker, ok, result) in rows {
        if !ok {
            out.push(format!(
                "Citus: could not check the tenant owners on worker {worker}: {result}"
            ));
            continue;
        }
        for ((owner, count), state) in owners.iter().zip(result.chars()) {
            let (what, fix) = match state {
                '-' => ("does not exist", format!("create the role there (CREATE ROLE {} LOGIN, run on the worker; Citus creates roles made on the coordinator while it propagates roles)", quote_ident(owner))),
                'n' => ("cannot log in", format!("ALTER ROLE {} LOGIN", quote_ident(owner))),
                _ => continue,
            };
            out.push(format!(
                "Citus: owner role {} of {count} tenant(s) {what} on worker {worker}: Citus runs their shard commands there as that role; {fix}",
                quote_ident(owner)
            ));
        }
    }
    out
}

/// What `verify()` reports on a Citus coordinator: `(tenant, problem)`, the tenant `None` for a
/// shared table or a worker.
pub fn problems() -> Vec<(Option<String>, String)> {
    match role() {
        Role::Absent => return Vec::new(),
        Role::Worker => return vec![(None, "Citus: this server is a worker node: its pg_tenancy has no tenants (they are registered on the coordinator); run verify() on the coordinator".to_string())],
        Role::Coordinator => {}
    }
    let mut out: Vec<(Option<String>, String)> = Vec::new();
    for s in strays() {
        out.push((
            Some(s.tenant),
            format!(
                "Citus: table {} is a local table in the tenant's distributed schema (it stays on the coordinator); tenancy.reconcile(dry_run => false) distributes it",
                s.table
            ),
        ));
    }
    for (tenant, tables) in undistributed() {
        out.push((
            Some(tenant),
            format!(
                "Citus: not a distributed schema although tenants are distributed here: its {tables} tables stay on the coordinator; tenancy.reconcile(dry_run => false) distributes it"
            ),
        ));
    }
    for (table, count, first) in non_reference_targets() {
        out.push((
            None,
            format!(
                "Citus: shared table {table}, referenced by foreign keys of {count} tenant(s) (first: {}), is not a reference table, so Citus cannot distribute them; SELECT create_reference_table({}) on the coordinator",
                quote_ident(&first),
                quote_literal(&table)
            ),
        ));
    }
    out.extend(owner_problems().into_iter().map(|p| (None, p)));
    out
}

/// What `reconcile` does on a Citus coordinator: distributes local tables of distributed tenant
/// schemas (colocated with the schema's tables) and, while tenants are distributed here, tenant
/// schemas that are not. Only for a caller with the privileges of the tenant's owner, and then as
/// that owner inside a security-restricted operation, as its migrations run: Citus copies the
/// tables' rows to the worker as the role that distributes them, so the owner's CHECK constraints,
/// index expressions and generated columns run there, and must never run with the caller's
/// rights. Other tenants are left alone and say why.
pub fn reconcile(dry_run: bool) -> Vec<(Option<String>, String)> {
    if !is_coordinator() {
        return Vec::new();
    }
    let me = crate::db::identity::current_user();
    let mut out: Vec<(Option<String>, String)> = Vec::new();
    let owner_of = |nsp: pg_sys::Oid| {
        let owner = crate::db::catalog::schema_owner(nsp);
        if crate::db::catalog::has_privileges_of(me, owner.oid) {
            Ok(owner)
        } else {
            Err(format!(
                "left alone: needs the privileges of the tenant's owner {} (the tables are distributed as their owner)",
                quote_ident(&owner.name)
            ))
        }
    };
    for s in strays() {
        if s.follows_parent {
            continue;
        }
        let action = match owner_of(s.nsp) {
            Err(why) => why,
            Ok(_) if dry_run => format!(
                "would distribute table {} (a local table in the tenant's distributed schema)",
                s.table
            ),
            Ok(owner) => {
                crate::db::registry::lock_tenant(s.nsp);
                match anchor(s.nsp) {
                    Some(a) => {
                        let table = s.table.clone();
                        crate::db::identity::as_tenant_owner(owner.oid, "pg_catalog, pg_temp", || {
                            distribute_call(
                                &format!("tenant {}", quote_ident(&s.tenant)),
                                &format!("table {}", s.table),
                                "Change or drop the table, then reconcile again.",
                                move || {
                                    spi::run_with_args(
                                        "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, NULL, colocate_with => $2)",
                                        &[table.as_str().into(), a.as_str().into()],
                                    )
                                },
                            )
                        });
                        format!("distributed table {} with the tenant's other tables", s.table)
                    }
                    None => format!(
                        "left alone: table {} cannot join the tenant's distributed schema, which has no distributed table to colocate it with; move it out of the schema (ALTER TABLE … SET SCHEMA), undistribute the then empty schema (SELECT citus_schema_undistribute({})), move it back and reconcile again",
                        s.table,
                        quote_literal(&quote_ident(&s.tenant))
                    ),
                }
            }
        };
        out.push((Some(s.tenant), action));
    }
    for (tenant, tables) in undistributed() {
        let Some(t) = crate::db::registry::tenant_by_name(&tenant) else {
            continue;
        };
        let action = match owner_of(t.oid) {
            Err(why) => why,
            Ok(_) if let Some(shared) = non_reference_target_of(t.oid) => {
                format!("left alone: its foreign keys reference {shared}, which is not a reference table (SELECT create_reference_table({}), then reconcile again)", quote_literal(&shared))
            }
            Ok(_) if dry_run => {
                format!("would distribute the tenant's schema ({tables} tables) to a worker")
            }
            Ok(owner) => {
                crate::db::registry::lock_tenant(t.oid);
                let nsp = t.oid;
                crate::db::identity::as_tenant_owner(owner.oid, "pg_catalog, pg_temp", || {
                    distribute_call(
                        &format!("tenant {}", quote_ident(&tenant)),
                        "the tenant's schema",
                        "Change the tenant's tables, then reconcile again.",
                        move || {
                            spi::run_with_args(
                                "SELECT pg_catalog.citus_schema_distribute($1::pg_catalog.regnamespace)",
                                &[DatumWithOid::from(nsp)],
                            )
                        },
                    )
                });
                format!("distributed the tenant's schema ({tables} tables) to a worker")
            }
        };
        out.push((Some(tenant), action));
    }
    out
}

/// Refuses (0A000) to manage a Citus reference or distributed table: Citus refuses triggers on
/// them (unless `citus.enable_unsafe_triggers`), and the managed-table triggers must fire for
/// every row, on the coordinator, where the registry is.
pub fn refuse_managed_citus_table(tbl: pg_sys::Oid, table: &str) {
    if !present() {
        return;
    }
    let kind = spi::get_one::<String>(
        "SELECT CASE WHEN d.repmodel OPERATOR(pg_catalog.=) 't' THEN 'reference' ELSE 'distributed' END \
         FROM pg_catalog.pg_dist_partition d \
         WHERE d.logicalrelid OPERATOR(pg_catalog.=) $1 AND d.colocationid OPERATOR(pg_catalog.<>) 0",
        &[DatumWithOid::from(tbl)],
    );
    if let Some(kind) = kind {
        report::raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("{table} cannot be a managed table: it is a Citus {kind} table"),
            )
            .detail("Citus refuses triggers on reference and distributed tables (unless citus.enable_unsafe_triggers is on, which Citus does not recommend), and a managed table creates, renames and retires tenants through triggers that must run on the coordinator.")
            .hint("Keep the table that lists tenants (organizations, say) a table of the coordinator: a plain table, or a Citus local table (citus_add_local_table_to_metadata) if distributed tables must join it."),
        )
    }
}

/// Runs `f` (a `DROP SCHEMA` of a tenant) so that on a Citus coordinator the workers' part of it
/// waits for locks no longer than `lock_timeout` (`'1ms'`, say) either: Citus runs the DROP on
/// each worker over its own connections, which a local setting does not reach, so the setting is
/// sent there (`citus.propagate_set_commands = local`), and reset to their default afterwards. Without Citus, or
/// for a tenant that is not distributed, just `f`.
pub fn with_remote_lock_timeout<R>(
    nsp: pg_sys::Oid,
    lock_timeout: &str,
    f: impl FnOnce() -> R,
) -> R {
    if !is_coordinator() || !is_distributed(nsp) {
        return f();
    }
    settings::with_local(&[("citus.propagate_set_commands", "local")], || {
        spi::run(&format!(
            "SET LOCAL lock_timeout = {}",
            quote_literal(lock_timeout)
        ));
        let r = f();
        // The workers' sessions go back to their default (nothing was sent before); here the
        // nest level's end restores the caller's value.
        spi::run("SET LOCAL lock_timeout TO DEFAULT");
        r
    })
}

/// Sends this transaction's `lock_timeout` to the workers' connections of the transaction (Citus
/// runs a distributed tenant's DDL there), where a local setting does not reach: a migration on a
/// Citus coordinator waits for a lock on a worker no longer than it would here.
pub fn send_lock_timeout() {
    let value = spi::current_setting("lock_timeout").unwrap_or_else(|| "0".to_string());
    settings::with_local(&[("citus.propagate_set_commands", "local")], || {
        spi::run(&format!(
            "SET LOCAL lock_timeout = {}",
            quote_literal(&value)
        ))
    })
}
