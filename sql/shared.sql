-- Tenant references to shared tables without fan-in (issue 15; src/api/shared.rs,
-- docs/functions/share_table.md, docs/functions/reference_shared.md).

-- Shared tables prepared by their owner with tenancy.share_table: the key tenant tables
-- reference, and its equality operators (from its unique index).
CREATE TABLE tenancy.shared_table_settings (
    tbl        regclass    PRIMARY KEY,
    key        text[]      NOT NULL,
    eq_ops     text[]      NOT NULL,
    shared_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    shared_by  name        NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE tenancy.shared_table_settings IS 'pg_tenancy: shared tables prepared for tenant references (tenancy.share_table)';

-- One row per reference declared with tenancy.reference_shared; name is the tenant table's
-- trigger. columns follow the order of key (the shared table's key).
CREATE TABLE tenancy.shared_references (
    referencing  regclass    NOT NULL,
    name         name        NOT NULL,
    columns      text[]      NOT NULL,
    shared       regclass    NOT NULL,
    key          text[]      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (referencing, name)
);
CREATE INDEX shared_references_shared ON tenancy.shared_references (shared);
COMMENT ON TABLE tenancy.shared_references IS 'pg_tenancy: tenant tables referencing shared tables (tenancy.reference_shared)';

-- Which keys of a shared table each tenant table has referenced: written once per key and table
-- (INSERT … ON CONFLICT DO NOTHING, no counters, so no hot rows), looked up when a shared row is
-- deleted or re-keyed, removed there when the table no longer holds the key.
CREATE TABLE tenancy.shared_presence (
    shared       regclass NOT NULL,
    key          text[]   NOT NULL,
    referencing  regclass NOT NULL,
    PRIMARY KEY (shared, key, referencing)
);
CREATE INDEX shared_presence_referencing ON tenancy.shared_presence (referencing);
COMMENT ON TABLE tenancy.shared_presence IS 'pg_tenancy: keys of shared tables that tenant tables reference';

SELECT pg_catalog.pg_extension_config_dump('tenancy.shared_table_settings', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.shared_references', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.shared_presence', '');

-- key: the shared table's key tenant tables reference; NULL: its primary key.
CREATE FUNCTION tenancy.share_table(tbl regclass, key name[] DEFAULT NULL) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._share_table(tbl::pg_catalog.oid, key::pg_catalog.text[]) $$;

-- key: NULL for the shared table's key; on_delete: only 'no action'.
CREATE FUNCTION tenancy.reference_shared(tbl regclass, columns name[], shared regclass,
                                         key name[] DEFAULT NULL, on_delete text DEFAULT 'no action')
    RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._reference_shared(tbl::pg_catalog.oid, columns::pg_catalog.text[],
                                           shared::pg_catalog.oid, key::pg_catalog.text[], on_delete)::pg_catalog.name $$;

ALTER FUNCTION tenancy._shared_ref_check() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION tenancy._shared_guard() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION tenancy._shared_truncate() SET search_path = pg_catalog, pg_temp;

CREATE VIEW tenancy.shared_tables AS
    SELECT s.tbl AS table_name, s.key, s.shared_at, s.shared_by
    FROM tenancy.shared_table_settings AS s
    ORDER BY s.tbl::pg_catalog.text;

-- A dropped tenant table (DROP TABLE, or with its schema or owner) takes its references and
-- notes with it, a dropped shared table its settings. As the role running the DDL; the function
-- removes only rows of tables the catalog no longer has.
CREATE FUNCTION tenancy._shared_ddl_trigger() RETURNS event_trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_tables oid[];
BEGIN
    SELECT coalesce(array_agg(d.objid), '{}') INTO v_tables
    FROM pg_event_trigger_dropped_objects() AS d
    WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.object_type = 'table';
    IF cardinality(v_tables) > 0 THEN
        PERFORM tenancy._shared_ddl(v_tables);
    END IF;
END
$$;
CREATE EVENT TRIGGER pg_tenancy_shared_dropped ON sql_drop
    WHEN TAG IN ('DROP SCHEMA', 'DROP OWNED', 'DROP TABLE') EXECUTE FUNCTION tenancy._shared_ddl_trigger();

-- verify(): native foreign keys from tenant tables to shared tables, one line per shared table,
-- with the number of triggers they put on it and the fix (once shared, or past 1 000 tenants).
CREATE FUNCTION tenancy._verify_shared() RETURNS TABLE (schema_name name, problem text)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT NULL::name,
           format('%s native foreign keys from %s tenants (first: %I) reference shared table %s, which carries %s triggers: each tenant adds two, and provisioning, every connection''s next query on %s and deleting its rows grow with them; %s',
                  k.fks, k.tenants, k.first_tenant, k.shared, (SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = k.shared),
                  k.shared,
                  CASE WHEN EXISTS (SELECT FROM tenancy.shared_table_settings s WHERE s.tbl = k.shared)
                       THEN format('%s is shared: replace each by tenancy.reference_shared in a tenant migration (it drops the native foreign key it replaces; docs/functions/reference_shared.md)', k.shared)
                       ELSE format('its owner %I runs SELECT tenancy.share_table(%L), then a tenant migration replaces each by tenancy.reference_shared (docs/functions/reference_shared.md)',
                                   (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = k.shared),
                                   k.shared::text)
                  END)
    FROM (SELECT c.confrelid::regclass AS shared, count(*) AS fks, count(DISTINCT t.schema_name) AS tenants,
                 min(t.schema_name) AS first_tenant
          FROM pg_constraint c
          JOIN pg_class f ON f.oid = c.conrelid
          JOIN tenancy._tenant_schemas t ON t.schema_oid = f.relnamespace
          JOIN pg_class s ON s.oid = c.confrelid
          WHERE c.contype = 'f'
            AND NOT EXISTS (SELECT FROM tenancy._tenant_schemas tt WHERE tt.schema_oid = s.relnamespace)
          GROUP BY c.confrelid) AS k
    -- Always once the table is shared (these keys are left to convert); otherwise from more than
    -- 1 000 tenants on, where the fan-in costs provisioning about a quarter more and a delete
    -- from the table visits every tenant (issue 15's measurements).
    WHERE k.tenants > 1000 OR EXISTS (SELECT FROM tenancy.shared_table_settings s WHERE s.tbl = k.shared)
    UNION ALL
    -- A reference whose trigger a tenant owner dropped, disabled or replaced is not enforced.
    SELECT n.nspname,
           format('%s: its shared reference %I to %s is not enforced: its trigger is %s; %s',
                  r.referencing, r.name, r.shared,
                  CASE WHEN g.oid IS NULL THEN 'gone'
                       WHEN g.tgfoid <> 'tenancy._shared_ref_check()'::regprocedure THEN 'not pg_tenancy''s (it runs another function)'
                       ELSE 'disabled' END,
                  format('%sdeclare it again in a tenant migration, SELECT tenancy.reference_shared(%L, ARRAY[%s], %L), which checks the rows written meanwhile',
                         CASE WHEN g.oid IS NULL THEN '' ELSE format('DROP TRIGGER %I ON %s, then ', r.name, r.referencing) END,
                         r.referencing::text, (SELECT string_agg(quote_literal(x), ', ') FROM unnest(r.columns) AS x), r.shared::text))
    FROM tenancy.shared_references r
    JOIN pg_class c ON c.oid = r.referencing
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_trigger g ON g.tgrelid = r.referencing AND g.tgname = r.name
    WHERE g.oid IS NULL OR g.tgenabled IN ('D', 'R') OR g.tgfoid <> 'tenancy._shared_ref_check()'::regprocedure
    UNION ALL
    -- A shared table whose guard its owner dropped or disabled (a bulk load's habit) lets
    -- referenced rows go.
    SELECT NULL::name,
           format('shared table %s: its trigger %I is %s, so %s are not checked against tenants'' references; its owner runs SELECT tenancy.share_table(%L), which puts it back',
                  s.tbl, w.tg, CASE WHEN g.oid IS NULL THEN 'gone' ELSE 'disabled' END, w.what, s.tbl::text)
    FROM tenancy.shared_table_settings s
    CROSS JOIN (VALUES ('tenancy_shared_guard', 'deletes and key changes'), ('tenancy_shared_truncate', 'TRUNCATEs')) AS w(tg, what)
    LEFT JOIN pg_trigger g ON g.tgrelid = s.tbl AND g.tgname = w.tg
    WHERE g.oid IS NULL OR g.tgenabled IN ('D', 'R')
$$;
