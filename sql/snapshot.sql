-- Snapshots (issue 15, "Baseline snapshots"; src/api/snapshot.rs, docs/snapshots.md): new tenants
-- built from a proven, squashed form of the current migration set instead of replaying it.

-- The one snapshot: what tenants owned by `owner` are built from while `fingerprint` is that of
-- the current migration set. `steps` is NULL when the set cannot be proven (then `reason` says
-- why and new tenants replay). Written only by pg_tenancy, as the extension's owner; not dumped
-- (a restored database replays until a snapshot is built again).
CREATE TABLE tenancy.snapshot (
    one_row      boolean     PRIMARY KEY DEFAULT true CHECK (one_row),
    fingerprint  text        NOT NULL,
    owner        name        NOT NULL,
    versions     text[]      NOT NULL,
    -- [{"sql": …}, {"sql": …, "json": …} (rows, bound as $1), {"sql": …, "is": …} (a comment)]
    steps        jsonb,
    reason       text,
    built_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    built_by     name        NOT NULL DEFAULT CURRENT_USER,
    build_ms     double precision NOT NULL DEFAULT 0,
    CHECK ((steps IS NULL) <> (reason IS NULL))
);
COMMENT ON TABLE tenancy.snapshot IS 'pg_tenancy: the proven squashed form of the migration set new tenants are built from (tenancy.build_snapshot)';

-- Ledger rows written from a snapshot say so (the migration was not run one by one).
ALTER TABLE tenancy.ledger ADD COLUMN from_snapshot boolean NOT NULL DEFAULT false;

-- What the generator's model (sql/generator.sql) does not describe, for the proof and the
-- squashed form: enum types with their values in order, privileges (the owner as '@owner@'),
-- comments, the rows migrations inserted, sequence positions (shared references: _snapshot_refs). Read as the
-- schema's owner inside a security-restricted operation (src/api/snapshot.rs), with
-- row_security off so that a policy hiding rows from the owner fails instead of hiding them.
CREATE FUNCTION tenancy._snapshot_extras(schema_name name) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_oid oid;
    v_owner oid;
    v_data jsonb := '{}';
    v_rows jsonb;
    r record;
BEGIN
    SELECT n.oid, n.nspowner INTO v_oid, v_owner FROM pg_namespace n WHERE n.nspname = schema_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'schema % does not exist', quote_ident(schema_name) USING ERRCODE = '3F000';
    END IF;
    PERFORM set_config('row_security', 'off', true);
    FOR r IN SELECT c.relname,
                    (SELECT jsonb_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS cols
             FROM pg_class c WHERE c.relnamespace = v_oid AND c.relkind = 'r' ORDER BY c.relname LOOP
        EXECUTE format('SELECT jsonb_agg(x.j ORDER BY x.j::text) FROM (SELECT to_jsonb(t.*) AS j FROM %I.%I t) x',
                       schema_name, r.relname) INTO v_rows;
        IF v_rows IS NOT NULL THEN
            v_data := v_data || jsonb_build_object(r.relname::text, jsonb_build_object('columns', r.cols, 'rows', v_rows));
        END IF;
    END LOOP;
    RETURN jsonb_build_object(
        'enums', coalesce((
            SELECT jsonb_object_agg(t.typname::text,
                                    (SELECT jsonb_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid))
            FROM pg_type t WHERE t.typnamespace = v_oid AND t.typtype = 'e'), '{}'),
        'acls', coalesce((
            SELECT jsonb_object_agg(o.target, o.entries) FROM (
                SELECT x.target, jsonb_agg(jsonb_build_object(
                           'grantee', CASE WHEN a.grantee = 0 THEN 'PUBLIC' WHEN a.grantee = v_owner THEN '@owner@'
                                           ELSE quote_ident((SELECT rolname FROM pg_roles WHERE oid = a.grantee)) END,
                           'privilege', a.privilege_type, 'grantable', a.is_grantable,
                           'by_owner', a.grantor = v_owner)
                           ORDER BY a.grantee = v_owner DESC, a.grantee, a.privilege_type) AS entries
                FROM (SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || '@tenant@.' || quote_ident(c.relname) AS target,
                             c.relacl AS acl
                      FROM pg_class c WHERE c.relnamespace = v_oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.relacl IS NOT NULL
                      UNION ALL
                      SELECT '(' || quote_ident(a.attname) || ') ON TABLE @tenant@.' || quote_ident(c.relname), a.attacl
                      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                      WHERE c.relnamespace = v_oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
                      UNION ALL
                      SELECT 'ROUTINE @tenant@.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', p.proacl
                      FROM pg_proc p WHERE p.pronamespace = v_oid AND p.proacl IS NOT NULL
                      UNION ALL
                      SELECT 'TYPE @tenant@.' || quote_ident(t.typname), t.typacl
                      FROM pg_type t WHERE t.typnamespace = v_oid AND t.typtype = 'e' AND t.typacl IS NOT NULL
                      UNION ALL
                      SELECT 'SCHEMA @tenant@', n.nspacl FROM pg_namespace n WHERE n.oid = v_oid AND n.nspacl IS NOT NULL) x,
                     aclexplode(x.acl) a
                GROUP BY x.target) o), '{}'),
        'comments', coalesce((
            SELECT jsonb_object_agg(
                       CASE WHEN i.type = 'schema' THEN 'SCHEMA @tenant@'
                            ELSE upper(CASE i.type WHEN 'table column' THEN 'column' WHEN 'table constraint' THEN 'constraint' ELSE i.type END)
                                 || ' ' || tenancy._tenantize(i.identity, schema_name) END,
                       d.description)
            FROM pg_description d
            CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) i
            WHERE (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM pg_class WHERE relnamespace = v_oid))
               OR (d.classoid = 'pg_proc'::regclass AND d.objoid IN (SELECT oid FROM pg_proc WHERE pronamespace = v_oid))
               OR (d.classoid = 'pg_type'::regclass AND d.objoid IN (SELECT oid FROM pg_type WHERE typnamespace = v_oid))
               OR (d.classoid = 'pg_constraint'::regclass AND d.objoid IN (SELECT oid FROM pg_constraint WHERE connamespace = v_oid))
               OR (d.classoid = 'pg_trigger'::regclass AND d.objoid IN (SELECT g.oid FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid WHERE c.relnamespace = v_oid))
               OR (d.classoid = 'pg_policy'::regclass AND d.objoid IN (SELECT p.oid FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = v_oid))
               OR (d.classoid = 'pg_namespace'::regclass AND d.objoid = v_oid)), '{}'),
        'data', v_data,
        -- The index each foreign key uses (PostgreSQL picks one when the key is made; a later
        -- DROP of that index or constraint then fails): the same in every tenant.
        'key_indexes', coalesce((
            SELECT jsonb_object_agg(c.relname || '.' || k.conname, i.relname::text)
            FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class i ON i.oid = k.conindid
            WHERE k.connamespace = v_oid AND k.contype = 'f'), '{}'),
        'sequences', coalesce((
            SELECT jsonb_object_agg(c.relname::text, s.pos)
            FROM pg_class c
            CROSS JOIN LATERAL (SELECT tenancy._snapshot_sequence(c.oid) AS pos) s
            WHERE c.relnamespace = v_oid AND c.relkind = 'S' AND s.pos IS NOT NULL), '{}'));
END
$$;

-- A schema's shared references and the shared keys its tables hold (pg_tenancy's own tables,
-- read as the extension's owner), for the proof and the squashed form.
CREATE FUNCTION tenancy._snapshot_refs(schema_name name) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object(
        'references', coalesce((
            SELECT jsonb_agg(jsonb_build_object('table', c.relname::text, 'name', r.name::text, 'columns', to_jsonb(r.columns),
                                                'shared', r.shared::text, 'key', to_jsonb(r.key)) ORDER BY c.relname, r.name)
            FROM tenancy.shared_references r JOIN pg_class c ON c.oid = r.referencing JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = schema_name), '[]'),
        'presence', coalesce((
            SELECT jsonb_agg(jsonb_build_array(c.relname::text, p.shared::text, to_jsonb(p.key)) ORDER BY c.relname, p.shared::text, p.key::text)
            FROM tenancy.shared_presence p JOIN pg_class c ON c.oid = p.referencing JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = schema_name), '[]'))
$$;

-- A sequence's position: [last_value, is_called]; NULL while it is where a new sequence starts
-- (nothing for the squashed form to set).
CREATE FUNCTION tenancy._snapshot_sequence(seq regclass) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v jsonb;
BEGIN
    EXECUTE format('SELECT CASE WHEN NOT s.is_called AND s.last_value = p.seqstart THEN NULL '
                   'ELSE jsonb_build_array(s.last_value, s.is_called) END '
                   'FROM %s s, pg_catalog.pg_sequence p WHERE p.seqrelid = %s', seq, seq::oid) INTO v;
    RETURN v;
END
$$;

-- Schema publications (pg_publication_namespace, PostgreSQL 15 and later; none before): read
-- dynamically so that the same function works on 14 and after a pg_upgrade from 14.
CREATE FUNCTION tenancy._publication_schemas(OUT row_oid oid, OUT pubid oid, OUT nspid oid, OUT row_xmin xid)
    RETURNS SETOF record
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_publication_namespace') IS NOT NULL THEN
        RETURN QUERY EXECUTE 'SELECT oid, pnpubid, pnnspid, xmin FROM pg_catalog.pg_publication_namespace';
    END IF;
END
$$;

-- What in a schema the proof cannot vouch for: objects of kinds neither the generator's model nor
-- _snapshot_extras describes, and properties they leave out. One row per kind, with examples.
CREATE FUNCTION tenancy._snapshot_unprovable(schema_name name) RETURNS SETOF text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    WITH n AS (SELECT oid, nspowner FROM pg_namespace WHERE nspname = schema_name),
    found(what, obj) AS (
        SELECT CASE c.relkind WHEN 'c' THEN 'composite type' WHEN 'f' THEN 'foreign table'
                              WHEN 'm' THEN 'materialized view' ELSE 'relation of kind ' || c.relkind::text END,
               c.relname::text
        FROM pg_class c, n WHERE c.relnamespace = n.oid AND c.relkind NOT IN ('r', 'p', 'i', 'I', 'S', 'v')
        UNION ALL SELECT 'unlogged relation', c.relname FROM pg_class c, n WHERE c.relnamespace = n.oid AND c.relpersistence <> 'p'
        UNION ALL SELECT 'storage parameters', c.relname FROM pg_class c, n
            WHERE c.relnamespace = n.oid AND c.reloptions IS NOT NULL AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
        UNION ALL SELECT 'tablespace', c.relname FROM pg_class c, n WHERE c.relnamespace = n.oid AND c.reltablespace <> 0
        UNION ALL SELECT 'replica identity', c.relname FROM pg_class c, n
            WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p') AND c.relreplident <> 'd'
        UNION ALL SELECT 'typed table', c.relname FROM pg_class c, n WHERE c.relnamespace = n.oid AND c.reloftype <> 0
        UNION ALL SELECT 'table inheritance', c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid, n
            WHERE c.relnamespace = n.oid AND NOT c.relispartition
        UNION ALL SELECT 'clustered index', c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid, n
            WHERE c.relnamespace = n.oid AND i.indisclustered
        UNION ALL SELECT 'column storage, compression, options or statistics target', c.relname || '.' || a.attname
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid, n
            WHERE c.relnamespace = n.oid AND a.attnum > 0 AND NOT a.attisdropped
              AND (a.attstattarget >= 0 OR EXISTS (SELECT FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\_attver=%') OR a.attstorage <> t.typstorage OR a.attcompression IN ('p', 'l'))
        UNION ALL SELECT CASE t.typtype WHEN 'd' THEN 'domain' WHEN 'r' THEN 'range type' WHEN 'm' THEN 'multirange type'
                                        WHEN 'b' THEN 'base type' WHEN 'p' THEN 'pseudo-type' ELSE 'type' END, t.typname
            FROM pg_type t, n WHERE t.typnamespace = n.oid AND t.typtype NOT IN ('e', 'c')
              AND NOT (t.typcategory = 'A' AND EXISTS (SELECT FROM pg_type e WHERE e.oid = t.typelem AND e.typarray = t.oid))
        UNION ALL SELECT 'aggregate or window function', p.proname FROM pg_proc p, n WHERE p.pronamespace = n.oid AND p.prokind IN ('a', 'w')
        UNION ALL SELECT 'operator', o.oprname FROM pg_operator o, n WHERE o.oprnamespace = n.oid
        UNION ALL SELECT 'operator class', o.opcname FROM pg_opclass o, n WHERE o.opcnamespace = n.oid
        UNION ALL SELECT 'operator family', o.opfname FROM pg_opfamily o, n WHERE o.opfnamespace = n.oid
        UNION ALL SELECT 'collation', o.collname FROM pg_collation o, n WHERE o.collnamespace = n.oid
        UNION ALL SELECT 'conversion', o.conname FROM pg_conversion o, n WHERE o.connamespace = n.oid
        UNION ALL SELECT 'text search configuration', o.cfgname FROM pg_ts_config o, n WHERE o.cfgnamespace = n.oid
        UNION ALL SELECT 'text search dictionary', o.dictname FROM pg_ts_dict o, n WHERE o.dictnamespace = n.oid
        UNION ALL SELECT 'text search parser', o.prsname FROM pg_ts_parser o, n WHERE o.prsnamespace = n.oid
        UNION ALL SELECT 'text search template', o.tmplname FROM pg_ts_template o, n WHERE o.tmplnamespace = n.oid
        UNION ALL SELECT 'extended statistics', o.stxname FROM pg_statistic_ext o, n WHERE o.stxnamespace = n.oid
        UNION ALL SELECT 'extension', e.extname FROM pg_extension e, n WHERE e.extnamespace = n.oid
        UNION ALL SELECT 'extension member', pg_describe_object(d.classid, d.objid, d.objsubid)
            FROM pg_depend d, n WHERE d.deptype = 'e' AND (
                (d.classid = 'pg_class'::regclass AND d.objid IN (SELECT oid FROM pg_class WHERE relnamespace = n.oid))
             OR (d.classid = 'pg_proc'::regclass AND d.objid IN (SELECT oid FROM pg_proc WHERE pronamespace = n.oid))
             OR (d.classid = 'pg_type'::regclass AND d.objid IN (SELECT oid FROM pg_type WHERE typnamespace = n.oid)))
        UNION ALL SELECT 'rule', r.rulename || ' on ' || c.relname FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class, n
            WHERE c.relnamespace = n.oid AND r.rulename <> '_RETURN'
        UNION ALL SELECT 'disabled or replica trigger', g.tgname || ' on ' || c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid, n
            WHERE c.relnamespace = n.oid AND NOT g.tgisinternal AND g.tgenabled <> 'O'
        UNION ALL SELECT 'default privileges', 'ALTER DEFAULT PRIVILEGES IN SCHEMA' FROM pg_default_acl d, n WHERE d.defaclnamespace = n.oid
        UNION ALL SELECT 'security label', pg_describe_object(s.classoid, s.objoid, s.objsubid) FROM pg_seclabel s, n
            WHERE (s.classoid = 'pg_class'::regclass AND s.objoid IN (SELECT oid FROM pg_class WHERE relnamespace = n.oid))
               OR (s.classoid = 'pg_proc'::regclass AND s.objoid IN (SELECT oid FROM pg_proc WHERE pronamespace = n.oid))
               OR (s.classoid = 'pg_namespace'::regclass AND s.objoid = n.oid)
        UNION ALL SELECT 'publication', p.pubname || ': ' || c.relname FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
            JOIN pg_class c ON c.oid = r.prrelid, n WHERE c.relnamespace = n.oid
        UNION ALL SELECT 'publication', p.pubname FROM tenancy._publication_schemas() r JOIN pg_publication p ON p.oid = r.pubid, n
            WHERE r.nspid = n.oid
        UNION ALL SELECT 'table with FORCE ROW LEVEL SECURITY (the proof reads rows as the owner)', c.relname::text FROM pg_class c, n
            WHERE c.relnamespace = n.oid AND c.relforcerowsecurity
        UNION ALL SELECT 'view column default', c.relname || '.' || a.attname FROM pg_attrdef d
            JOIN pg_class c ON c.oid = d.adrelid JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum, n
            WHERE c.relnamespace = n.oid AND c.relkind = 'v'
        UNION ALL SELECT 'invalid index', ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid, n
            WHERE ic.relnamespace = n.oid AND NOT i.indisvalid
        UNION ALL SELECT 'comment on an object the snapshot does not recreate', pg_describe_object(d.classoid, d.objoid, d.objsubid)
            FROM pg_description d, n
            WHERE (d.classoid = 'pg_constraint'::regclass AND d.objoid IN (SELECT oid FROM pg_constraint k WHERE k.connamespace = n.oid AND k.contypid <> 0))
        UNION ALL SELECT 'privileges granted by another role than the owner', x.obj FROM (
            SELECT c.relname::text AS obj, c.relacl AS acl FROM pg_class c, n WHERE c.relnamespace = n.oid
            UNION ALL SELECT c.relname || '.' || a.attname, a.attacl FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid, n WHERE c.relnamespace = n.oid
            UNION ALL SELECT p.proname, p.proacl FROM pg_proc p, n WHERE p.pronamespace = n.oid
            UNION ALL SELECT t.typname, t.typacl FROM pg_type t, n WHERE t.typnamespace = n.oid
            UNION ALL SELECT n.oid::regnamespace::text, nn.nspacl FROM pg_namespace nn, n WHERE nn.oid = n.oid) x, n,
            aclexplode(x.acl) a WHERE a.grantor <> n.nspowner
        UNION ALL SELECT 'owned by another role', o.what FROM n, tenancy._foreign_owned(n.oid, n.nspowner) o
    )
    SELECT what || ': ' || string_agg(DISTINCT obj, ', ') FROM found GROUP BY what ORDER BY what
$$;

-- Where a relation belongs for _snapshot_touched: its schema; a TOAST table's or TOAST index's
-- is its table's; a table that a foreign key of a schema in `inside` references (its pg_class row
-- notes the new triggers) counts as inside, the foreign key being the model's.
CREATE FUNCTION tenancy._snapshot_home(rel oid, inside oid[]) RETURNS oid
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE
        WHEN c.relnamespace = 'pg_toast'::regnamespace THEN
            coalesce((SELECT t.relnamespace FROM pg_class t WHERE t.reltoastrelid = c.oid),
                     (SELECT t.relnamespace FROM pg_index i JOIN pg_class t ON t.reltoastrelid = i.indrelid
                      WHERE i.indexrelid = c.oid),
                     c.relnamespace)
        WHEN EXISTS (SELECT FROM pg_constraint k WHERE k.confrelid = c.oid AND k.connamespace = ANY (inside))
            THEN inside[1]
        ELSE c.relnamespace END
    FROM pg_class c WHERE c.oid = rel
$$;

-- Catalog rows this transaction inserted or updated outside the schemas `inside`, as
-- 'catalog key' strings: taken before and after a scratch replay, the new ones are the replay's
-- effects outside its schema (src/api/snapshot.rs). Only rows with an XID at least as new as this
-- transaction's are looked at; tenancy._snapshot_mine tells which are this transaction's.
CREATE FUNCTION tenancy._snapshot_touched(inside oid[]) RETURNS SETOF text
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
    WITH me AS (SELECT pg_catalog.age(pg_catalog.pg_current_xact_id()::xid) AS age),
    rows(cat, key, xmin, nsp) AS (
        SELECT 'pg_class', c.oid::text, c.xmin, tenancy._snapshot_home(c.oid, inside) FROM pg_class c, me WHERE age(c.xmin) <= me.age
        UNION ALL SELECT 'pg_attribute', a.attrelid || '.' || a.attnum, a.xmin, tenancy._snapshot_home(a.attrelid, inside)
            FROM pg_attribute a, me WHERE age(a.xmin) <= me.age
        UNION ALL SELECT 'pg_attrdef', d.oid::text, d.xmin, c.relnamespace FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid, me WHERE age(d.xmin) <= me.age
        UNION ALL SELECT 'pg_constraint', k.oid::text, k.xmin, k.connamespace FROM pg_constraint k, me WHERE age(k.xmin) <= me.age
        UNION ALL SELECT 'pg_trigger', g.oid::text, g.xmin,
                         coalesce((SELECT k.connamespace FROM pg_constraint k WHERE k.oid = g.tgconstraint AND k.connamespace = ANY (inside)), c.relnamespace)
            FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid, me WHERE age(g.xmin) <= me.age
        UNION ALL SELECT 'pg_policy', p.oid::text, p.xmin, c.relnamespace FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid, me WHERE age(p.xmin) <= me.age
        UNION ALL SELECT 'pg_rewrite', r.oid::text, r.xmin, c.relnamespace FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class, me WHERE age(r.xmin) <= me.age
        UNION ALL SELECT 'pg_proc', p.oid::text, p.xmin, p.pronamespace FROM pg_proc p, me WHERE age(p.xmin) <= me.age
        UNION ALL SELECT 'pg_type', t.oid::text, t.xmin, t.typnamespace FROM pg_type t, me WHERE age(t.xmin) <= me.age
        UNION ALL SELECT 'pg_namespace', n.oid::text, n.xmin, n.oid FROM pg_namespace n, me WHERE age(n.xmin) <= me.age
        UNION ALL SELECT 'pg_operator', o.oid::text, o.xmin, o.oprnamespace FROM pg_operator o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_collation', o.oid::text, o.xmin, o.collnamespace FROM pg_collation o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_conversion', o.oid::text, o.xmin, o.connamespace FROM pg_conversion o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_opclass', o.oid::text, o.xmin, o.opcnamespace FROM pg_opclass o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_opfamily', o.oid::text, o.xmin, o.opfnamespace FROM pg_opfamily o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_ts_config', o.oid::text, o.xmin, o.cfgnamespace FROM pg_ts_config o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_ts_dict', o.oid::text, o.xmin, o.dictnamespace FROM pg_ts_dict o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_statistic_ext', o.oid::text, o.xmin, o.stxnamespace FROM pg_statistic_ext o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_default_acl', o.oid::text, o.xmin, 0::oid FROM pg_default_acl o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_description', o.classoid || '.' || o.objoid || '.' || o.objsubid, o.xmin,
                         CASE o.classoid
                             WHEN 'pg_class'::regclass THEN tenancy._snapshot_home(o.objoid, inside)
                             WHEN 'pg_proc'::regclass THEN (SELECT p.pronamespace FROM pg_proc p WHERE p.oid = o.objoid)
                             WHEN 'pg_type'::regclass THEN (SELECT t.typnamespace FROM pg_type t WHERE t.oid = o.objoid)
                             WHEN 'pg_constraint'::regclass THEN (SELECT k.connamespace FROM pg_constraint k WHERE k.oid = o.objoid)
                             WHEN 'pg_namespace'::regclass THEN o.objoid
                             WHEN 'pg_trigger'::regclass THEN (SELECT c.relnamespace FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid WHERE g.oid = o.objoid)
                             WHEN 'pg_policy'::regclass THEN (SELECT c.relnamespace FROM pg_policy y JOIN pg_class c ON c.oid = y.polrelid WHERE y.oid = o.objoid)
                             ELSE 0::oid END
            FROM pg_description o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_shdescription', o.classoid || '.' || o.objoid, o.xmin, 0::oid FROM pg_shdescription o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_extension', o.oid::text, o.xmin, 0::oid FROM pg_extension o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_event_trigger', o.oid::text, o.xmin, 0::oid FROM pg_event_trigger o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_publication', o.oid::text, o.xmin, 0::oid FROM pg_publication o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_publication_rel', o.oid::text, o.xmin, 0::oid FROM pg_publication_rel o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_publication_namespace', o.row_oid::text, o.row_xmin, 0::oid FROM tenancy._publication_schemas() o, me WHERE age(o.row_xmin) <= me.age
        UNION ALL SELECT 'pg_authid', o.oid::text, o.xmin, 0::oid FROM pg_authid o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_auth_members', o.roleid || '.' || o.member, o.xmin, 0::oid FROM pg_auth_members o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_db_role_setting', o.setdatabase || '.' || o.setrole, o.xmin, 0::oid FROM pg_db_role_setting o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_database', o.oid::text, o.xmin, 0::oid FROM pg_database o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_foreign_server', o.oid::text, o.xmin, 0::oid FROM pg_foreign_server o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_user_mapping', o.oid::text, o.xmin, 0::oid FROM pg_user_mapping o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_largeobject_metadata', o.oid::text, o.xmin, 0::oid FROM pg_largeobject_metadata o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_cast', o.oid::text, o.xmin, 0::oid FROM pg_cast o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_language', o.oid::text, o.xmin, 0::oid FROM pg_language o, me WHERE age(o.xmin) <= me.age
        UNION ALL SELECT 'pg_seclabel', o.classoid || '.' || o.objoid, o.xmin, 0::oid FROM pg_seclabel o, me WHERE age(o.xmin) <= me.age)
    SELECT r.cat || ' ' || r.key || ' ' || r.xmin
    FROM rows r
    WHERE r.nsp <> ALL (inside) AND tenancy._snapshot_mine(r.xmin::text::bigint)
$$;

-- Which path new tenants take and why. "snapshot" only while the stored snapshot is proven and
-- its fingerprint is the current one (tenancy._snapshot_fingerprint); for tenants owned by another
-- role than `owner`, and on Citus, tenants replay.
CREATE VIEW tenancy.snapshot_status AS
    SELECT CASE WHEN s.steps IS NOT NULL AND f.fresh AND NOT u.off THEN 'snapshot' ELSE 'replay' END AS path,
           CASE WHEN u.off AND s.steps IS NOT NULL AND f.fresh
                    THEN 'tenancy.use_snapshot is off: new tenants replay their migrations; SET tenancy.use_snapshot = on (or ALTER DATABASE … SET tenancy.use_snapshot = on) uses the snapshot'
                WHEN s.one_row IS NULL
                    THEN 'no snapshot has been built: SELECT * FROM tenancy.build_snapshot() builds one'
                WHEN NOT f.fresh
                    THEN pg_catalog.format('the snapshot is stale (the migration set, the shared tables, tenancy.shared_schemas or the server changed since it was built) and is not used: SELECT * FROM tenancy.build_snapshot(%L) rebuilds it', s.owner)
                WHEN s.steps IS NULL THEN s.reason
                ELSE pg_catalog.format('proven equal to a replay of the %s migrations: new tenants owned by %I are built from it, others replay',
                                       pg_catalog.cardinality(s.versions), s.owner)
           END AS reason,
           s.owner, pg_catalog.cardinality(s.versions) AS migrations,
           pg_catalog.jsonb_array_length(s.steps) AS steps, f.fresh, s.built_at, s.built_by, s.build_ms
    FROM (SELECT COALESCE(pg_catalog.current_setting('tenancy.use_snapshot', true), 'on') OPERATOR(pg_catalog.<>) 'on' AS off) AS u
    LEFT JOIN tenancy.snapshot AS s ON true
    LEFT JOIN LATERAL (SELECT tenancy._snapshot_fingerprint(s.owner) OPERATOR(pg_catalog.=) s.fingerprint AS fresh) AS f ON true;

-- Builds (or rebuilds) the snapshot for tenants owned by `owner` (NULL: the caller), proving it
-- first; returns the path new tenants take and why.
CREATE FUNCTION tenancy.build_snapshot(owner regrole DEFAULT NULL)
    RETURNS TABLE (path text, reason text)
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT b.path, b.reason FROM tenancy._build_snapshot(owner::pg_catalog.oid) AS b $$;
