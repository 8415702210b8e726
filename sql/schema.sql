-- pg_tenancy catalog: the tenant registry, the per-tenant ledger, and registered migrations.
-- Runs first (bootstrap). Every object is schema-qualified.

-- One row per tenant. schema_oid identifies the schema (a rename does not change it) within the
-- cluster of tenancy.registry_cluster (pg_upgrade does not keep schema OIDs); NULL when the
-- tenant has no schema (dropped behind pg_tenancy's back). name_key is the name ignoring case,
-- unique so that 'Org_1' and 'org_1' cannot both be tenants.
CREATE TABLE tenancy.tenants (
    schema_name    name        PRIMARY KEY,
    name_key       text        NOT NULL UNIQUE,
    schema_oid     oid         UNIQUE,
    registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- the last migrate_all failure, cleared when the tenant next migrates successfully
    last_error     text,
    failed_at      timestamptz,
    -- noted by the schema event triggers (sql/fleet.sql) on DDL made outside pg_tenancy, so that
    -- it survives pg_upgrade: when the schema was dropped, and the name it was renamed to
    schema_dropped_at  timestamptz,
    schema_renamed_to  name,
    -- the managed table whose row created (or re-adopted) the tenant; cleared when that table is
    -- dropped. verify() reports a tenant of a 'detach' or 'drop' table that no row names.
    managed_by         regclass
);
COMMENT ON TABLE tenancy.tenants IS 'pg_tenancy: registered tenants (one schema each)';

-- What has been applied to each tenant, written in the same transaction as the migration's DDL.
CREATE TABLE tenancy.ledger (
    schema_name  name        NOT NULL
                 REFERENCES tenancy.tenants (schema_name) ON UPDATE CASCADE ON DELETE CASCADE,
    version      text        NOT NULL,
    name         text        NOT NULL,
    checksum     text        NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    duration     interval    NOT NULL,
    baselined    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (schema_name, version)
);
COMMENT ON TABLE tenancy.ledger IS 'pg_tenancy: tenant migrations applied to each tenant (sha256 checksums)';

-- Migrations stored in the database with tenancy.add_migration.
CREATE TABLE tenancy.registered_migrations (
    version   text        PRIMARY KEY CHECK (version OPERATOR(pg_catalog.~) '^[0-9]+$'),
    name      text        NOT NULL,
    sql       text        NOT NULL,
    checksum  text        NOT NULL,
    added_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- the author: a migration runs on a tenant only if this role has the privileges of the
    -- tenant's owner (by name, so that dump and restore keep it)
    added_by  name        NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE tenancy.registered_migrations IS 'pg_tenancy: tenant migrations added with tenancy.add_migration';

-- pg_dump keeps the contents of these tables.
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.registered_migrations', '');

-- The cluster whose schema OIDs tenancy.tenants holds (its system identifier). pg_upgrade copies
-- this row into a cluster with another identifier and other schema OIDs: read paths then find
-- each tenant's schema by name and the first write re-links the registry (issue 13). Not dumped:
-- a restore gets the row of the CREATE EXTENSION it runs, and relink_restored below re-links
-- the restored rows.
CREATE TABLE tenancy.registry_cluster (
    one_row            boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    system_identifier  bigint  NOT NULL
);
INSERT INTO tenancy.registry_cluster (system_identifier)
    SELECT c.system_identifier FROM pg_catalog.pg_control_system() AS c;

-- Managed tables: the template that names each row's tenant, and what the triggers do.
CREATE TABLE tenancy.managed_table_settings (
    tbl         regclass    PRIMARY KEY,
    template    text[]      NOT NULL,
    on_create   boolean     NOT NULL,
    on_update   boolean     NOT NULL,
    on_delete   text        NOT NULL CHECK (on_delete IN ('keep', 'detach', 'drop')),
    managed_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- who owns the tenants the rows create (NULL: the role inserting the row)
    owner       regrole
);
COMMENT ON TABLE tenancy.managed_table_settings IS 'pg_tenancy: managed tables (see tenancy.manage_tenant)';
SELECT pg_catalog.pg_extension_config_dump('tenancy.managed_table_settings', '');

-- Tenants of a managed table that were detached while their schema stayed (by their row's DELETE
-- under on_delete => 'detach', or by tenancy.detach_tenant): their ledger as it was, so that
-- inserting the row again re-adopts the schema with exactly what was applied to it. Forgotten when
-- the schema or the table is dropped, or the schema is registered by hand.
CREATE TABLE tenancy.detached_tenants (
    schema_name  name        PRIMARY KEY,
    schema_oid   oid         NOT NULL,
    managed_by   regclass    NOT NULL,
    -- the tenant's tenancy.ledger rows: version, name, checksum, applied_at, seconds, baselined
    -- (and from_snapshot, sql/snapshot.sql)
    ledger       jsonb       NOT NULL,
    detached_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE tenancy.detached_tenants IS 'pg_tenancy: detached tenants of managed tables, re-adopted when their row comes back';
SELECT pg_catalog.pg_extension_config_dump('tenancy.detached_tenants', '');

-- Fleet runs (CALL tenancy.migrate_all): one row per run, with live counters.
CREATE TABLE tenancy.fleet_runs (
    run_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at     timestamptz,
    started_by      name        NOT NULL DEFAULT CURRENT_USER,
    coordinator_pid integer     NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
    jobs            integer     NOT NULL,
    workers         integer     NOT NULL DEFAULT 0,
    stop_on_error   boolean     NOT NULL,
    lock_timeout    text        NOT NULL,
    considered      integer     NOT NULL,   -- tenants in scope
    total           integer     NOT NULL,   -- tenants with something pending
    migrated        integer     NOT NULL DEFAULT 0,
    failed          integer     NOT NULL DEFAULT 0,
    state           text        NOT NULL DEFAULT 'running'
                    CHECK (state IN ('running', 'stopping', 'finished', 'stopped')),
    notified_count  integer     NOT NULL DEFAULT 0,
    notified_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    -- when migrated and failed were last counted from the queue (at most ten times a second while the
    -- run goes, and when it ends: sql/fleet.sql, _fleet_count)
    counted_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE tenancy.fleet_runs IS 'pg_tenancy: migrate_all runs (see tenancy.progress)';

-- The queue of one run: one row per tenant with something pending when the run started.
-- UNLOGGED: claiming and finishing a tenant write no WAL (docs/fleet.md, "What a tenant costs").
-- What a tenant's step did is in the ledger and tenancy.tenants, written by the same transaction;
-- a crash empties this table, and the next CALL plans its queue from the ledger again.
CREATE UNLOGGED TABLE tenancy.fleet_items (
    run_id       bigint      NOT NULL REFERENCES tenancy.fleet_runs ON DELETE CASCADE,
    schema_name  name        NOT NULL,
    state        text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done', 'failed')),
    applied      integer,
    error        text,
    finished_at  timestamptz,
    PRIMARY KEY (run_id, schema_name)
);
CREATE INDEX fleet_items_queued ON tenancy.fleet_items (run_id, schema_name) WHERE state = 'queued';

-- The jobs of one run: its coordinator (the session that CALLed migrate_all) and each background
-- worker, by PID and backend start time. A PID alone may belong to a later process (after the job
-- ended, or after a crash and restart) and application_name is anyone's to set; the pair is not.
CREATE TABLE tenancy.fleet_jobs (
    run_id         bigint      NOT NULL REFERENCES tenancy.fleet_runs ON DELETE CASCADE,
    pid            integer     NOT NULL,
    backend_start  timestamptz NOT NULL,
    worker         boolean     NOT NULL,   -- false: the coordinator
    PRIMARY KEY (run_id, pid, backend_start)
);

-- Attribute (column) multitenancy: shared tables with a tenant column under row-level security,
-- and the tenants that exist only as values of such columns (no schema).
CREATE TABLE tenancy.attribute_tables (
    tbl            regclass PRIMARY KEY,
    tenant_column  name     NOT NULL
);
CREATE TABLE tenancy.attribute_tenants (
    tenant         text        PRIMARY KEY CHECK (tenant <> ''),
    registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('tenancy.attribute_tables', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.attribute_tenants', '');

-- pg_restore re-creates the tenant schemas (pre-data) under their names but with new OIDs, then
-- loads this table's rows with the dumped OIDs. Re-link a row whose OID does not belong to the
-- schema of its name (or of the name it was renamed to by hand) to the schema that now has that
-- name, or to none; a row without a schema (dropped behind pg_tenancy's back) stays without one.
-- Rows written by pg_tenancy itself always match and pass through unchanged.
CREATE FUNCTION tenancy._relink_restored_tenant() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NEW.schema_oid IS NOT NULL AND NOT EXISTS (
           SELECT FROM pg_namespace n
           WHERE n.oid = NEW.schema_oid AND n.nspname = coalesce(NEW.schema_renamed_to, NEW.schema_name)) THEN
        NEW.schema_oid := (SELECT n.oid FROM pg_namespace n
                           WHERE n.nspname = coalesce(NEW.schema_renamed_to, NEW.schema_name));
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER relink_restored BEFORE INSERT ON tenancy.tenants
    FOR EACH ROW EXECUTE FUNCTION tenancy._relink_restored_tenant();

-- The same for detached tenants: a restored row follows the schema of its name; without one there
-- is nothing to re-adopt and the row is not restored.
CREATE FUNCTION tenancy._relink_restored_detached() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_namespace n WHERE n.oid = NEW.schema_oid AND n.nspname = NEW.schema_name) THEN
        NEW.schema_oid := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = NEW.schema_name);
        IF NEW.schema_oid IS NULL THEN
            RETURN NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER relink_restored BEFORE INSERT ON tenancy.detached_tenants
    FOR EACH ROW EXECUTE FUNCTION tenancy._relink_restored_detached();

-- Objects in a tenant schema not owned by its owner (what verify reports and
-- reconcile(fix_owners => true) fixes): what it is, and the statement that hands it to the owner.
-- Sequences linked to a table (identity, serial) follow their table and are left out.
CREATE FUNCTION tenancy._foreign_owned(nsp oid, owner oid) RETURNS TABLE (what text, fix text)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT x.what, x.fix FROM (
        SELECT 1 AS ord,
               format('%s %s owned by %s', k.kind, c.oid::regclass, c.relowner::regrole) AS what,
               format('ALTER %s %s OWNER TO %s', k.kind, c.oid::regclass, owner::regrole) AS fix
        FROM pg_class c
        CROSS JOIN LATERAL (SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                   WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                   WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END AS kind) AS k
        WHERE c.relnamespace = nsp AND c.relowner <> owner AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
          AND NOT (c.relkind = 'S' AND EXISTS (
                SELECT FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
        UNION ALL
        SELECT 2, format('routine %s owned by %s', p.oid::regprocedure, p.proowner::regrole),
               format('ALTER ROUTINE %s OWNER TO %s', p.oid::regprocedure, owner::regrole)
        FROM pg_proc p WHERE p.pronamespace = nsp AND p.proowner <> owner
        UNION ALL
        SELECT 3, format('type %s owned by %s', ty.oid::regtype, ty.typowner::regrole),
               format('ALTER %s %s OWNER TO %s', CASE ty.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                      ty.oid::regtype, owner::regrole)
        FROM pg_type ty WHERE ty.typnamespace = nsp AND ty.typowner <> owner AND ty.typtype IN ('e', 'd', 'r')
    ) AS x
    ORDER BY x.ord, x.what
$$;
