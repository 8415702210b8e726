-- pg_tenancy SQL surface written in SQL: wrappers that give the Rust functions their documented result
-- types, and views. Every function pins its search_path.

-- Parameters are text (not name) so that an over-long tenant name is refused (42622) instead of
-- being silently truncated to 63 bytes by the name type; results are name.
CREATE FUNCTION tenancy.create_tenant(schema text) RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._create_tenant(schema)::pg_catalog.name $$;

CREATE FUNCTION tenancy.register_tenant(schema text, baseline text DEFAULT NULL) RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._register_tenant(schema, baseline)::pg_catalog.name $$;

CREATE FUNCTION tenancy.rename_tenant(old text, new text) RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._rename_tenant(old, new)::pg_catalog.name $$;

CREATE FUNCTION tenancy.all_tenants() RETURNS SETOF name
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT schema_name FROM tenancy.tenants ORDER BY schema_name $$;

CREATE FUNCTION tenancy.current_tenant() RETURNS name
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT NULLIF(current_setting('tenancy.tenant', true), '')::pg_catalog.name $$;

CREATE FUNCTION tenancy.manage_tenant(tbl regclass, template text[], on_create boolean DEFAULT true,
                                      on_update boolean DEFAULT true, on_delete text DEFAULT 'keep')
    RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._manage_tenant(tbl::pg_catalog.oid, template, on_create, on_update, on_delete) $$;

CREATE FUNCTION tenancy.unmanage_tenant(tbl regclass) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._unmanage_tenant(tbl::pg_catalog.oid) $$;

-- The trigger functions pin their search_path too (pgrx has no attribute for triggers).
ALTER FUNCTION tenancy._managed_row() SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION tenancy._managed_truncate() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE of %.% is refused: deleting its rows drops their tenant schemas (on_delete = ''drop'')',
        quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
        USING ERRCODE = '55000',
              HINT = 'DELETE the rows to drop their tenants, or switch the table to on_delete => ''keep'' or ''detach'' with tenancy.manage_tenant first.';
END
$$;

CREATE VIEW tenancy.managed_tables AS
    SELECT s.tbl AS table_name, s.template, s.on_create, s.on_update, s.on_delete, s.managed_at
    FROM tenancy.managed_table_settings AS s
    ORDER BY s.tbl::pg_catalog.text;

-- Every known tenant migration, in apply order.
CREATE VIEW tenancy.migrations AS
    SELECT m.version, m.name, m.checksum, m.source
    FROM (
        SELECT e.version, e.name, e.checksum, 'embedded'::text AS source
        FROM tenancy._embedded_migrations() AS e
        UNION ALL
        SELECT r.version, r.name, r.checksum, 'registered'::text
        FROM tenancy.registered_migrations AS r
        WHERE NOT EXISTS (
            SELECT FROM tenancy._embedded_migrations() AS e2
            WHERE e2.version::pg_catalog.numeric OPERATOR(pg_catalog.=) r.version::pg_catalog.numeric
              AND e2.checksum OPERATOR(pg_catalog.=) r.checksum)
    ) AS m
    ORDER BY m.version::pg_catalog.numeric;

-- Grants a role what it needs to provision and migrate tenants. The role also needs CREATE on
-- the database to create schemas (see the hint of the 42501 error).
CREATE FUNCTION tenancy.grant_admin(role regrole) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'tenancy.grant_admin: role must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass an existing role, e.g. SELECT tenancy.grant_admin(''app_admin'').';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA tenancy TO %s', role);
    EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO %s', role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tenancy TO %s', role);
END
$$;

CREATE FUNCTION tenancy.enable_attribute_tenancy(tbl regclass, tenant_column name) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._enable_attribute_tenancy(tbl::pg_catalog.oid, tenant_column::pg_catalog.text) $$;

CREATE FUNCTION tenancy.add_foreign_key(from_tbl regclass, from_cols name[], to_tbl regclass,
                                        to_cols name[] DEFAULT NULL) RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._add_foreign_key(from_tbl::pg_catalog.oid, from_cols::pg_catalog.text[],
                                          to_tbl::pg_catalog.oid, to_cols::pg_catalog.text[])::pg_catalog.name $$;
