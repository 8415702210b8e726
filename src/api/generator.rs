//! The migration generator (docs/generator.md), SQL-facing: build the schema the current migrations
//! produce in a scratch schema, describe it and the template (`tenancy.describe_schema`), and
//! diff the two with the pure `schema_diff` module.

use pgrx::prelude::*;

use crate::api::args::required;
use crate::apply;
use crate::db::catalog;
use crate::db::citus;
use crate::db::registry;
use crate::db::report::{raise, OrRaise};
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::migration_set;
use crate::rules::names::quote_ident;
use crate::rules::schema_diff::{self, Schema, TenantColumns};

/// The schema's description, with its own name in bodies and expressions turned into
/// `@tenant@` (also inside string literals, which describe_schema's SQL leaves alone).
fn describe(schema: &str) -> Schema {
    let json = catalog::describe_schema(schema);
    let mut described: Schema = serde_json::from_str(&json).unwrap_or_else(|e| {
        raise(
            TenancyError::new(SqlState::ObjectNotInPrerequisiteState, format!("cannot read the description of schema {}: {e}", quote_ident(schema)))
                .hint("This is a bug in pg_tenancy's describe_schema; please report it with the schema's DDL."),
        )
    });
    described.tenantize(schema);
    described
}

fn require_schema(schema: &str) {
    if catalog::schema_oid(schema).is_none() {
        raise(
            TenancyError::new(SqlState::InvalidSchemaName, format!("schema {} does not exist", quote_ident(schema)))
                .hint("Create the template with SELECT tenancy.create_template('tenant_template'), edit it, then generate."),
        );
    }
}

/// `base_version`: `'0'` (no migrations) or a known version; an unknown one would silently
/// build from whatever migrations precede it (42704 instead).
fn check_base(base_version: Option<&str>) {
    let Some(v) = base_version else { return };
    migration_set::check_version(v).or_raise();
    if migration_set::is_zero(v) {
        return;
    }
    let known = crate::db::known_set::known_versions();
    if let Err(e) = migration_set::find(&known, v) {
        raise(TenancyError {
            message: format!("base_version {v} is not a known tenant migration"),
            ..e.hint("SELECT version FROM tenancy.migrations lists the known versions; base_version => '0' builds from no migrations, NULL from all of them.")
        });
    }
}

/// Warns about migrations a scratch build or template left out because their author lacks the
/// privileges of the schema's owner (see `apply::build_schema`).
fn warn_left_out(left_out: &[TenancyError]) {
    for e in left_out {
        pgrx::warning!(
            "left out of the build: {} ({})",
            e.message,
            e.hint.as_deref().unwrap_or_default()
        );
    }
}

/// Describes what the selected migrations produce, built in a scratch schema owned by `owner`
/// (the caller when `None`) that is dropped again (its DDL and drop are kept quiet). Also returns
/// the migrations left out because their author lacks that owner's privileges.
fn describe_built(
    include: impl Fn(&crate::rules::migration_set::Migration) -> bool,
    owner: Option<&catalog::Role>,
) -> (Schema, Vec<TenancyError>) {
    // SAFETY: reads this backend's pid.
    let scratch = format!("tenancy_scratch_{}", unsafe { pg_sys::MyProcPid });
    let saved = spi::current_setting("client_min_messages").unwrap_or_default();
    spi::set_config("client_min_messages", "warning", true);
    let (built, left_out) = citus::local_only(|| {
        spi::run(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(&scratch)
        ));
        match owner {
            Some(o) => spi::run(&format!(
                "CREATE SCHEMA {} AUTHORIZATION {}",
                quote_ident(&scratch),
                quote_ident(&o.name)
            )),
            None => spi::run(&format!("CREATE SCHEMA {}", quote_ident(&scratch))),
        }
        let left_out = apply::build_schema(&scratch, include);
        let built = describe(&scratch);
        spi::run(&format!("DROP SCHEMA {} CASCADE", quote_ident(&scratch)));
        (built, left_out)
    });
    spi::set_config("client_min_messages", &saved, true);
    (built, left_out)
}

/// `verify(deep => true)`: each tenant against what exactly its applied migrations produce, built
/// as the tenant's owner (as its own migrations ran), once per distinct set of applied migrations
/// and owner. Tenants whose owner the caller cannot act as are reported, not compared.
#[pg_extern(volatile, name = "_verify_deep")]
#[search_path(pg_catalog, pg_temp)]
fn verify_deep() -> TableIterator<'static, (name!(schema_name, String), name!(problem, String))> {
    let mut out = Vec::new();
    let me = crate::db::identity::current_user();
    for (applied, tenants) in registry::tenants_by_applied_set() {
        let mut by_owner: Vec<(catalog::Role, Vec<String>)> = Vec::new();
        for t in tenants {
            if catalog::schema_oid(&t).is_none() {
                continue; // reported by the registry checks
            }
            let owner = catalog::schema_owner_by_name(&t);
            match by_owner.iter_mut().find(|(o, _)| o.oid == owner.oid) {
                Some((_, ts)) => ts.push(t),
                None => by_owner.push((owner, vec![t])),
            }
        }
        for (owner, tenants) in by_owner {
            if !catalog::has_privileges_of(me, owner.oid) {
                for t in tenants {
                    out.push((t, format!("not compared with what its migrations produce: the current role does not have the privileges of the tenant's owner {} (run verify(deep => true) as a member of it or a superuser)", quote_ident(&owner.name))));
                }
                continue;
            }
            let (expected, left_out) =
                describe_built(|m| applied.contains(&m.version), Some(&owner));
            for t in tenants {
                for e in &left_out {
                    out.push((
                        t.clone(),
                        format!("compared without a migration: {}", e.message),
                    ));
                }
                for (object, what) in schema_diff::differences(&describe(&t), &expected) {
                    let what = what
                        .replace("the first schema", "the tenant")
                        .replace("the second schema", "what its migrations produce");
                    out.push((t.clone(), format!("{object}: {what}")));
                }
            }
        }
    }
    TableIterator::new(out)
}

/// Creates a schema holding what the current migrations (up to `base_version`) produce, not
/// registered as a tenant: the template a developer edits.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn create_template(
    template_schema: default!(Option<&str>, "'tenant_template'"),
    base_version: default!(Option<&str>, "NULL"),
) -> String {
    let name = required(
        template_schema,
        "create_template",
        "template_schema",
        "tenancy.create_template('tenant_template')",
    );
    check_base(base_version);
    if catalog::schema_oid(name).is_some() {
        raise(
            TenancyError::new(
                SqlState::DuplicateSchema,
                format!("schema {} already exists", quote_ident(name)),
            )
            .hint("Drop it first (DROP SCHEMA … CASCADE) or pass another name."),
        );
    }
    let left_out = citus::local_only(|| {
        spi::run(&format!("CREATE SCHEMA {}", quote_ident(name)));
        apply::build_schema(name, apply::up_to(base_version))
    });
    warn_left_out(&left_out);
    name.to_string()
}

/// The DDL turning the schema the current migrations produce (up to `base_version`; `'0'` for
/// none) into `template_schema`.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn generate_migration(
    template_schema: default!(Option<&str>, "'tenant_template'"),
    base_version: default!(Option<&str>, "NULL"),
) -> String {
    let template = required(
        template_schema,
        "generate_migration",
        "template_schema",
        "tenancy.generate_migration('tenant_template')",
    );
    check_base(base_version);
    require_schema(template);
    let (from, left_out) = describe_built(apply::up_to(base_version), None);
    warn_left_out(&left_out);
    let to = describe(template);
    let tenants: TenantColumns = registry::attribute_columns_in(template)
        .into_iter()
        .collect();
    let statements = schema_diff::diff(&from, &to, &tenants);
    // Every tenant runs this DDL: it must never refer to the template itself.
    if let Some(s) = schema_diff::names_schema(&statements, template) {
        raise(
            TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!(
                    "the generated migration would refer to the template schema {} itself",
                    quote_ident(template)
                ),
            )
            .detail(format!("statement: {}", crate::rules::sqltext::excerpt(s)))
            .hint("Refer to the template's own objects unqualified or through @tenant@ in the template (for example in function bodies), then generate again."),
        );
    }
    schema_diff::render(&statements, template)
}

/// What differs between two schemas' descriptions (column order ignored); no rows when equal.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn compare_schemas(
    a: Option<&str>,
    b: Option<&str>,
) -> TableIterator<'static, (name!(object, String), name!(difference, String))> {
    let example = "tenancy.compare_schemas('tenant_template', 'org_1')";
    let a = required(a, "compare_schemas", "a", example);
    let b = required(b, "compare_schemas", "b", example);
    require_schema(a);
    require_schema(b);
    TableIterator::new(schema_diff::differences(&describe(a), &describe(b)))
}

/// `tenancy.describe_schema(schema_name)`: the description, built as the schema's owner inside a
/// security-restricted operation (`tenancy._describe_schema` holds the catalog queries).
#[pg_extern(volatile, name = "_describe_as_owner")]
#[search_path(pg_catalog, pg_temp)]
fn describe_as_owner(schema_name: Option<&str>) -> pgrx::JsonB {
    let schema = required(
        schema_name,
        "describe_schema",
        "schema_name",
        "SELECT tenancy.describe_schema('tenant_template')",
    );
    let json = catalog::describe_schema(schema);
    pgrx::JsonB(serde_json::from_str(&json).unwrap_or(serde_json::Value::Null))
}
