-- pg_tenancy SQL surface written in SQL: wrappers that give the Rust functions their documented result
-- types, and views. Every function pins its search_path.

-- Parameters are text (not name) so that an over-long tenant name is refused (42622) instead of
-- being silently truncated to 63 bytes by the name type; results are name.
-- owner: who owns the tenant (its migrations run as that role); NULL: the calling role.
CREATE FUNCTION tenancy.create_tenant(schema text, owner regrole DEFAULT NULL) RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._create_tenant(schema, owner::pg_catalog.oid)::pg_catalog.name $$;

CREATE FUNCTION tenancy.register_tenant(schema text, baseline text DEFAULT NULL) RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._register_tenant(schema, baseline)::pg_catalog.name $$;

CREATE FUNCTION tenancy.rename_tenant(old text, new text) RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._rename_tenant(old, new)::pg_catalog.name $$;

CREATE FUNCTION tenancy.all_tenants() RETURNS SETOF name
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT schema_name FROM tenancy.tenants ORDER BY schema_name $$;

-- The tenant set_tenant chose, once it checks out: the schema set_tenant put on search_path
-- (tenancy.tenant_oid) still has the tenant's name and is still a registered tenant. A tenant
-- dropped, renamed or detached since is reported (55000), never returned: the session's
-- search_path would otherwise use whatever schema has that name now.
CREATE FUNCTION tenancy.current_tenant() RETURNS name
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tenant CONSTANT text := NULLIF(current_setting('tenancy.tenant', true), '');
    chosen CONSTANT text := NULLIF(current_setting('tenancy.tenant_oid', true), '');
    shown CONSTANT text := '"' || replace(tenant, '"', '""') || '"';  -- always quoted, as in every message
    now_named name;
    hint CONSTANT text := 'Call tenancy.set_tenant again. A tenant set for the session (is_local => false) outlives drops and renames, and under a transaction-pooling connection pooler passes to the next client: call tenancy.set_tenant(tenant) inside each transaction instead.';
BEGIN
    IF tenant IS NULL OR chosen IS NULL THEN
        -- No tenant, an attribute tenant (no schema), or tenancy.tenant set by hand.
        RETURN tenant;
    END IF;
    SELECT n.nspname INTO now_named FROM pg_namespace AS n WHERE n.oid = chosen::oid;
    IF now_named = tenant AND EXISTS (SELECT FROM tenancy.tenants AS t WHERE t.schema_name = tenant) THEN
        RETURN tenant;
    END IF;
    IF now_named IS NULL THEN
        RAISE EXCEPTION 'the current tenant % no longer exists: its schema was dropped after tenancy.set_tenant chose it',
            shown USING ERRCODE = '55000', HINT = hint;
    ELSIF now_named <> tenant THEN
        RAISE EXCEPTION 'the current tenant % is stale: the schema tenancy.set_tenant chose for it is now named %',
            shown, '"' || replace(now_named, '"', '""') || '"' USING ERRCODE = '55000', HINT = hint;
    ELSE
        RAISE EXCEPTION 'the current tenant % is no longer a registered tenant (detached after tenancy.set_tenant chose it)',
            shown USING ERRCODE = '55000', HINT = hint;
    END IF;
END
$$;

-- owner: who owns the tenants the rows create; NULL: the role inserting the row.
CREATE FUNCTION tenancy.manage_tenant(tbl regclass, template text[], on_create boolean DEFAULT true,
                                      on_update boolean DEFAULT true, on_delete text DEFAULT 'keep',
                                      owner regrole DEFAULT NULL)
    RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._manage_tenant(tbl::pg_catalog.oid, template, on_create, on_update, on_delete,
                                        owner::pg_catalog.oid) $$;

CREATE FUNCTION tenancy.unmanage_tenant(tbl regclass) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._unmanage_tenant(tbl::pg_catalog.oid) $$;

-- The trigger functions pin their search_path too (pgrx has no attribute for triggers).
ALTER FUNCTION tenancy._managed_row() SET search_path = pg_catalog, pg_temp;

-- The TRUNCATE guard of a managed table with on_delete => 'drop' (deleting its rows drops their
-- tenants, TRUNCATE would skip that). Statement triggers are not inherited, so it is installed on
-- the table and on each of its partitions, by manage_tenant and, for partitions created or
-- attached later, by the DDL event trigger (sql/fleet.sql). It checks the settings when it fires:
-- a partition detached since, or a table whose policy changed, truncates normally.
CREATE FUNCTION tenancy._managed_truncate() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_managed regclass;
BEGIN
    SELECT m.table_name INTO v_managed
    FROM tenancy.managed_tables AS m
    WHERE m.on_delete = 'drop'
      AND (m.table_name::oid = TG_RELID
           OR m.table_name IN (SELECT a.relid FROM pg_partition_ancestors(TG_RELID) AS a))
    LIMIT 1;
    IF v_managed IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_managed::oid = TG_RELID THEN
        RAISE EXCEPTION 'TRUNCATE of %.% is refused: deleting its rows drops their tenant schemas (on_delete = ''drop'')',
            quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
            USING ERRCODE = '55000',
                  HINT = 'DELETE the rows to drop their tenants, or switch the table to on_delete => ''keep'' or ''detach'' with tenancy.manage_tenant first.';
    END IF;
    RAISE EXCEPTION 'TRUNCATE of %.% is refused: it is a partition of managed table %, and deleting its rows drops their tenant schemas (on_delete = ''drop'')',
        quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME), v_managed
        USING ERRCODE = '55000',
              HINT = format('DELETE the rows to drop their tenants, or switch %s to on_delete => ''keep'' or ''detach'' with tenancy.manage_tenant first.', v_managed);
END
$$;

CREATE VIEW tenancy.managed_tables AS
    SELECT s.tbl AS table_name, s.template, s.on_create, s.on_update, s.on_delete, s.managed_at, s.owner
    FROM tenancy.managed_table_settings AS s
    ORDER BY s.tbl::pg_catalog.text;

-- Every known tenant migration, in apply order.
CREATE VIEW tenancy.migrations AS
    SELECT m.version, m.name, m.checksum, m.source
    FROM (
        SELECT e.version, e.name, e.checksum, 'embedded'::text AS source
        FROM tenancy._embedded_checksums() AS e
        UNION ALL
        SELECT r.version, r.name, r.checksum, 'registered'::text
        FROM tenancy.registered_migrations AS r
        WHERE NOT EXISTS (
            SELECT FROM tenancy._embedded_checksums() AS e2
            WHERE e2.version::pg_catalog.numeric OPERATOR(pg_catalog.=) r.version::pg_catalog.numeric
              AND e2.checksum OPERATOR(pg_catalog.=) r.checksum)
    ) AS m
    ORDER BY m.version::pg_catalog.numeric;

-- Grants (SECURITY.md, "Privilege model"). Nobody gets write access to pg_tenancy's registry,
-- ledger or migration tables: pg_tenancy's functions write them as the extension's owner. Each
-- level adds to the one before:
--   1 provision: create, register, rename, detach and drop tenants, migrate them, verify, reconcile;
--   2 author: also register migrations and use the generator;
--   3 admin: every routine (managed tables, attribute tenancy).
-- Every level reads every pg_tenancy table (last_error, migration texts) and writes the fleet's
-- operational tables (runs, queue, jobs), which say what is being done, never what is allowed.
CREATE FUNCTION tenancy._grant(role regrole, level integer, caller text) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    provision CONSTANT text[] := ARRAY[
        'create_tenant', '_create_tenant', 'register_tenant', '_register_tenant', 'rename_tenant',
        '_rename_tenant', 'detach_tenant', 'drop_tenant', 'migrate_tenant', 'migrate_all',
        '_fleet_join', '_fleet_begin', '_fleet_step', '_fleet_count', '_fleet_wait', '_fleet_finish',
        '_fleet_launch_workers', '_fleet_launch', '_backend_alive', '_backend_start',
        '_refuse_transaction_block', '_in_transaction_block', '_record_failure', '_migrate_step', 'verify',
        '_verify_registry', '_verify_managed', '_verify_deep', '_verify_trust', '_foreign_owned', 'reconcile',
        'add_attribute_tenant', 'remove_attribute_tenant', 'all_tenants', 'current_tenant',
        'set_tenant', '_embedded_checksums', '_system_identifier', 'relink', 'move_tenant',
        '_verify_citus', '_tenant_nodes'];
    author CONSTANT text[] := ARRAY[
        'add_migration', 'remove_migration', 'repair', 'create_template', 'generate_migration', 'compare_schemas',
        'describe_schema', '_describe_as_owner', '_split_statements', '_embedded_migrations'];
    r record;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'tenancy.%: role must not be NULL', caller
            USING ERRCODE = '22004', HINT = format('Pass an existing role, e.g. SELECT tenancy.%s(''app'').', caller);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA tenancy TO %s', role);
    FOR r IN SELECT p.oid::regprocedure AS routine, p.prokind, p.proname
             FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace
               AND p.proname NOT IN ('grant_provision', 'grant_author', 'grant_admin', '_grant')
             ORDER BY 1 LOOP
        IF level >= 3 OR r.proname = ANY (provision) OR (level >= 2 AND r.proname = ANY (author)) THEN
            EXECUTE format('GRANT EXECUTE ON %s %s TO %s',
                           CASE r.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, r.routine, role);
        END IF;
    END LOOP;
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA tenancy TO %s', role);
    EXECUTE format('GRANT INSERT, UPDATE, DELETE ON tenancy.fleet_runs, tenancy.fleet_items, tenancy.fleet_jobs TO %s', role);
END
$$;

-- Provision and migrate tenants. To create schemas the role also needs CREATE on the database.
CREATE FUNCTION tenancy.grant_provision(role regrole) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._grant(role, 1, 'grant_provision') $$;

-- Provision, and author migrations (which run on a tenant only if the role has the privileges of
-- the tenant's owner).
CREATE FUNCTION tenancy.grant_author(role regrole) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._grant(role, 2, 'grant_author') $$;

-- Everything: also managed tables and attribute tenancy. Still no write access to pg_tenancy's tables.
CREATE FUNCTION tenancy.grant_admin(role regrole) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._grant(role, 3, 'grant_admin') $$;

CREATE FUNCTION tenancy.enable_attribute_tenancy(tbl regclass, tenant_column name) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._enable_attribute_tenancy(tbl::pg_catalog.oid, tenant_column::pg_catalog.text) $$;

CREATE FUNCTION tenancy.add_foreign_key(from_tbl regclass, from_cols name[], to_tbl regclass,
                                        to_cols name[] DEFAULT NULL) RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._add_foreign_key(from_tbl::pg_catalog.oid, from_cols::pg_catalog.text[],
                                          to_tbl::pg_catalog.oid, to_cols::pg_catalog.text[])::pg_catalog.name $$;
