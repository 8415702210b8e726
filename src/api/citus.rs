//! Tenants on Citus (issue 14, docs/citus.md): where each tenant lives, moving one, and what
//! `verify` reports there. Distribution itself happens where tenants are migrated
//! ([`crate::db::citus::Distribution`]).

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use crate::api::args::required;
use crate::apply;
use crate::db::catalog;
use crate::db::citus;
use crate::db::identity;
use crate::db::report::{self, raise, Caught, OrRaise};
use crate::db::settings;
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::names::{quote_ident, quote_literal};

/// Each distributed tenant schema and the worker holding it (`host:port`), for `tenancy.status`;
/// no rows without Citus.
#[pg_extern(stable, name = "_tenant_nodes")]
#[search_path(pg_catalog, pg_temp)]
fn tenant_nodes() -> TableIterator<'static, (name!(schema_name, String), name!(node, String))> {
    TableIterator::new(citus::tenant_nodes())
}

/// What `tenancy.verify()` reports on a Citus coordinator (nothing elsewhere).
#[pg_extern(volatile, name = "_verify_citus")]
#[search_path(pg_catalog, pg_temp)]
fn verify_citus(
) -> TableIterator<'static, (name!(schema_name, Option<String>), name!(problem, String))> {
    TableIterator::new(citus::problems())
}

const TRANSFER_MODES: [&str; 3] = ["auto", "force_logical", "block_writes"];

/// Moves a distributed tenant's shards to worker `node:port` (`citus_schema_move`), with the
/// caller's rights (Citus requires the privileges of the schema's owner), the tenant locked
/// against pg_tenancy's own changes meanwhile.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn move_tenant(
    schema: Option<&str>,
    node: Option<&str>,
    port: Option<i32>,
    transfer_mode: default!(Option<&str>, "'auto'"),
) {
    let example = "tenancy.move_tenant('org_1', 'worker-2', 5432)";
    let schema = required(schema, "move_tenant", "schema", example);
    let node = required(node, "move_tenant", "node", example);
    let port = required(port, "move_tenant", "port", example);
    let mode = required(transfer_mode, "move_tenant", "transfer_mode", example);
    if !citus::present() || !citus::is_coordinator() {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!(
                    "tenancy.move_tenant needs Citus: {}",
                    if citus::present() {
                        "this server is a Citus worker, not the coordinator"
                    } else {
                        "the citus extension is not installed in this database"
                    }
                ),
            )
            .hint("Tenants are moved between Citus workers from the coordinator (docs/citus.md). Without Citus every tenant lives on this server."),
        )
    }
    if !TRANSFER_MODES.contains(&mode) {
        raise(
            TenancyError::new(
                SqlState::InvalidParameterValue,
                format!("tenancy.move_tenant: transfer_mode {} is not one of auto, force_logical, block_writes", quote_literal(mode)),
            )
            .hint("auto (default) copies with logical replication, and refuses a tenant with a table without a primary key or replica identity; block_writes blocks the tenant's writes while it is copied; force_logical replicates such tables anyway (Citus's shard_transfer_mode)."),
        )
    }
    spi::writable();
    let t = apply::require_tenant(schema);
    let label = quote_ident(&t.name);
    let t = report::with_context(
        || apply::lock(&t),
        move |c| {
            Caught {
            message: format!("tenant {label}: {}", c.message),
            hint: Some(c.hint.unwrap_or_else(|| "Another session holds the tenant (a migration, rename, drop or move of it); pg_locks shows who. Nothing was moved; retry when it has finished.".to_string())),
            ..c
        }
        },
    );
    if !citus::is_distributed(t.oid) {
        raise(
            TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!("tenant {} is not a distributed schema: it lives on the coordinator", quote_ident(&t.name)),
            )
            .hint("SELECT * FROM tenancy.reconcile(dry_run => false) distributes tenants that have tables while tenants are distributed here (tenancy.distribute, citus.enable_schema_based_sharding); a tenant without tables is distributed with its first table."),
        )
    }
    let owner = catalog::schema_owner(t.oid);
    if !catalog::has_privileges_of(identity::current_user(), owner.oid) {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!(
                    "permission denied to move tenant {}: the current role does not have the privileges of its owner {}",
                    quote_ident(&t.name),
                    quote_ident(&owner.name)
                ),
            )
            .hint("Move it as its owner (or a member of it, or a superuser): Citus requires the schema's owner."),
        )
    }
    // Citus locks the reference tables the tenant's foreign keys point at, which needs their
    // owner; the move runs as the tenant's owner, so say so before Citus does.
    let foreign = spi::get_one::<String>(
        "SELECT pg_catalog.string_agg(DISTINCT k.confrelid::pg_catalog.regclass::pg_catalog.text, ', ') \
         FROM pg_catalog.pg_constraint k \
         JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) k.confrelid \
         WHERE k.connamespace OPERATOR(pg_catalog.=) $1 AND k.contype OPERATOR(pg_catalog.=) 'f' \
           AND r.relnamespace OPERATOR(pg_catalog.<>) $1 \
           AND NOT pg_catalog.pg_has_role($2, r.relowner, 'USAGE')",
        &[DatumWithOid::from(t.oid), DatumWithOid::from(owner.oid)],
    );
    if let Some(tables) = foreign {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!(
                    "cannot move tenant {}: its owner {} does not own {tables}, which its foreign keys reference",
                    quote_ident(&t.name),
                    quote_ident(&owner.name)
                ),
            )
            .detail("Citus locks the reference tables a tenant's foreign keys point at while it moves the tenant, which needs their owner. pg_tenancy moves a tenant as the tenant's owner, never with the caller's rights: Citus copies the rows as the role that moves them, so the owner's CHECK constraints, index expressions and generated columns would run on the target with the caller's rights.")
            .hint(format!(
                "Have the shared tables owned by the tenants' owner (ALTER TABLE … OWNER TO {}) or by a role it is a member of; docs/citus.md, \"Moving tenants\".",
                quote_ident(&owner.name)
            )),
        )
    }
    let known = spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_node n \
                        WHERE n.nodename OPERATOR(pg_catalog.=) $1 AND n.nodeport OPERATOR(pg_catalog.=) $2 \
                          AND n.noderole OPERATOR(pg_catalog.=) 'primary' AND n.isactive)",
        &[node.into(), port.into()],
    )
    .unwrap_or(false);
    if !known {
        raise(
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("tenancy.move_tenant: {node}:{port} is not an active primary node of this Citus cluster"),
            )
            .hint("SELECT nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary' AND isactive lists the nodes; use the name and port as registered there (citus_add_node)."),
        )
    }
    if citus::node_of(&t.name).as_deref() == Some(format!("{node}:{port}").as_str()) {
        return; // already there
    }
    let (name, target) = (t.name.clone(), node.to_string());
    // The mode as a literal (one of TRANSFER_MODES): its type is in schema citus, which the
    // caller need not be able to name.
    let sql = format!(
        "SELECT pg_catalog.citus_schema_move($1::pg_catalog.regnamespace, $2, $3, shard_transfer_mode => {})",
        quote_literal(mode)
    );
    let nsp = t.oid;
    let owner_oid = owner.oid;
    report::with_context(
        move || {
            // As the tenant's owner, in a security-restricted operation, as its migrations run:
            // Citus copies the rows as the role that moves them, so the owner's CHECK constraints,
            // index expressions and generated columns run on the target with that role's rights.
            identity::as_tenant_owner(owner_oid, "pg_catalog, pg_temp", || {
                settings::with_local(&[("client_min_messages", "warning")], || {
                    spi::run_with_args(
                        &sql,
                        &[DatumWithOid::from(nsp), target.as_str().into(), port.into()],
                    )
                    .or_raise()
                })
            })
        },
        move |c| {
            use pgrx::pg_sys::errcodes::PgSqlErrorCode::{
                ERRCODE_INTERNAL_ERROR, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            };
            Caught {
                code: if c.code == ERRCODE_INTERNAL_ERROR { ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE } else { c.code },
                message: format!("tenant {}: Citus could not move it to {node}:{port}", quote_ident(&name)),
                detail: Some(match c.detail { Some(d) => format!("{}\n{d}", c.message), None => c.message.clone() }),
                hint: Some(c.hint.unwrap_or_else(|| if c.code == pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE {
                    "Nothing was moved. pg_tenancy moves a tenant as its owner, and Citus requires that role to own the tenant's tables and the reference tables its foreign keys point at (docs/citus.md, \"Moving tenants\").".to_string()
                } else { "Nothing was moved. transfer_mode => 'block_writes' needs no logical replication (wal_level = logical on every node for the others); SELECT * FROM citus_shards shows where the tenant's shards are.".to_string() })),
            }
        },
    )
}
