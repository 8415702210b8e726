-- The migration generator's catalog side: a canonical description of one schema, with references
-- to the schema's own objects unqualified (described under search_path = <schema>, pg_catalog)
-- and references to any other schema qualified. src/rules/schema_diff/ diffs two descriptions.

-- Replaces the schema's own name, as "name". or name., with @tenant@. in a view or function body.
CREATE FUNCTION tenancy._tenantize(body text, schema_name name) RETURNS text
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT regexp_replace(
               replace(body, '"' || replace(schema_name, '"', '""') || '".', '@tenant@.'),
               '(^|[^A-Za-z0-9_$"@])' || regexp_replace(quote_ident(schema_name) || '.', '([^A-Za-z0-9_])', '\\\1', 'g'),
               '\1@tenant@.', 'g')
$$;

-- The description itself. Called through tenancy.describe_schema, which runs it as the described
-- schema's owner inside a security-restricted operation: the schema's own objects are on the
-- search_path while pg_get_expr & co. print (so its names print unqualified), and whatever of them
-- an expression below could still reach runs with the owner's rights, never the caller's.
CREATE FUNCTION tenancy._describe_schema(schema_name name) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_oid oid;
    v_prefix text := quote_ident(schema_name) || '.';
    v_result jsonb;
BEGIN
    IF schema_name IS NULL THEN
        RAISE EXCEPTION 'tenancy.describe_schema: schema_name must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass a value for schema_name, e.g. SELECT tenancy.describe_schema(''tenant_template'').';
    END IF;
    SELECT n.oid INTO v_oid FROM pg_namespace n WHERE n.nspname = schema_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'schema % does not exist', quote_ident(schema_name)
            USING ERRCODE = '3F000', HINT = 'Pass the name of an existing schema.';
    END IF;
    -- Own objects print unqualified, everything else qualified.
    -- pg_catalog first: the described schema's own functions or operators must never run here.
    PERFORM set_config('search_path', 'pg_catalog, ' || quote_ident(schema_name), true);
    WITH
    seqs AS (
        SELECT c.relname::text AS name,
               jsonb_build_object(
                   'type', format_type(s.seqtypid, NULL), 'start', s.seqstart, 'increment', s.seqincrement,
                   'min', s.seqmin, 'max', s.seqmax, 'cache', s.seqcache, 'cycle', s.seqcycle,
                   'owned_by', (SELECT format('%I.%I', t.relname, a.attname)
                                FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
                                JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'a'
                                  AND d.refclassid = 'pg_class'::regclass LIMIT 1)) AS d
        FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid
        WHERE c.relnamespace = v_oid AND c.relkind = 'S'
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'i')),
    cols AS (
        SELECT a.attrelid,
               jsonb_agg(jsonb_build_object(
                   'name', a.attname::text,
                   'type', format_type(a.atttypid, a.atttypmod),
                   'not_null', a.attnotnull,
                   'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
                   'generated', CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
                   'identity', CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END,
                   -- The identity sequence's options that differ from CREATE TABLE's defaults
                   -- (as identity options text), NULL when none do.
                   'identity_options', CASE WHEN a.attidentity <> '' THEN (
                       SELECT nullif(concat_ws(' ',
                                  CASE WHEN s.seqincrement <> 1 THEN 'INCREMENT BY ' || s.seqincrement END,
                                  CASE WHEN s.seqmin <> CASE WHEN s.seqincrement > 0 THEN 1 ELSE b.tmin END
                                       THEN 'MINVALUE ' || s.seqmin END,
                                  CASE WHEN s.seqmax <> CASE WHEN s.seqincrement > 0 THEN b.tmax ELSE -1 END
                                       THEN 'MAXVALUE ' || s.seqmax END,
                                  CASE WHEN s.seqstart <> CASE WHEN s.seqincrement > 0 THEN s.seqmin ELSE s.seqmax END
                                       THEN 'START WITH ' || s.seqstart END,
                                  CASE WHEN s.seqcache <> 1 THEN 'CACHE ' || s.seqcache END,
                                  CASE WHEN s.seqcycle THEN 'CYCLE' END), '')
                       FROM pg_depend d JOIN pg_sequence s ON s.seqrelid = d.objid,
                            LATERAL (SELECT CASE s.seqtypid WHEN 'int2'::regtype THEN -32768 WHEN 'int4'::regtype THEN -2147483648
                                                            ELSE -9223372036854775808 END AS tmin,
                                            CASE s.seqtypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647
                                                            ELSE 9223372036854775807 END AS tmax) b
                       WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                         AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.deptype = 'i' LIMIT 1) END,
                   'collation', CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
                                     THEN (SELECT quote_ident(co.collname) FROM pg_collation co WHERE co.oid = a.attcollation) END)
                   ORDER BY a.attnum) AS columns
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_type ty ON ty.oid = a.atttypid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE c.relnamespace = v_oid AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
        GROUP BY a.attrelid),
    -- Constraints are structured, so the generator never re-parses their text: the kind, the
    -- constrained columns in key order (conkey; an exclusion constraint's expression entries have
    -- no column and are left out) and, for a foreign key, the referenced table (its schema only
    -- when it is not the described one), columns (confkey) and clauses. 'def' is replayed as is.
    -- An unknown catalog code maps to NULL, which the generator refuses to read.
    cons AS (
        SELECT k.conrelid,
               jsonb_object_agg(k.conname::text, jsonb_build_object(
                   'kind', CASE k.contype WHEN 'p' THEN 'primary' WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check'
                                          WHEN 'f' THEN 'foreign' WHEN 'x' THEN 'exclusion' END,
                   'def', pg_get_constraintdef(k.oid),
                   'columns', (SELECT coalesce(jsonb_agg(a.attname::text ORDER BY u.n), '[]')
                               FROM unnest(k.conkey) WITH ORDINALITY u(attnum, n)
                               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum),
                   'deferrable', k.condeferrable,
                   'initially_deferred', k.condeferred,
                   'validated', k.convalidated,
                   'foreign_key', CASE WHEN k.contype = 'f' THEN jsonb_build_object(
                       'schema', CASE WHEN fc.relnamespace <> v_oid THEN fs.nspname::text END,
                       'table', fc.relname::text,
                       'columns', (SELECT jsonb_agg(a.attname::text ORDER BY u.n)
                                   FROM unnest(k.confkey) WITH ORDINALITY u(attnum, n)
                                   JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum),
                       'match', CASE k.confmatchtype WHEN 's' THEN 'simple' WHEN 'f' THEN 'full' WHEN 'p' THEN 'partial' END,
                       'on_update', CASE k.confupdtype WHEN 'a' THEN 'no_action' WHEN 'r' THEN 'restrict' WHEN 'c' THEN 'cascade'
                                                       WHEN 'n' THEN 'set_null' WHEN 'd' THEN 'set_default' END,
                       'on_delete', CASE k.confdeltype WHEN 'a' THEN 'no_action' WHEN 'r' THEN 'restrict' WHEN 'c' THEN 'cascade'
                                                       WHEN 'n' THEN 'set_null' WHEN 'd' THEN 'set_default' END,
                       -- ON DELETE SET NULL / SET DEFAULT (columns): confdelsetcols, new in
                       -- PostgreSQL 15, read through to_jsonb so older catalogs give NULL.
                       'on_delete_columns', (SELECT jsonb_agg(a.attname::text ORDER BY u.n)
                                             FROM jsonb_array_elements_text(nullif(to_jsonb(k) -> 'confdelsetcols', 'null'::jsonb))
                                                  WITH ORDINALITY u(attnum, n)
                                             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum::int2))
                   END)) AS constraints
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        LEFT JOIN pg_class fc ON fc.oid = k.confrelid
        LEFT JOIN pg_namespace fs ON fs.oid = fc.relnamespace
        -- A partition's copies of its parent's constraints (conparentid) and inherited checks
        -- (not conislocal) come with the partition; the referencing side's per-partition rows of
        -- a foreign key to a partitioned table too (conparentid, under the same name).
        WHERE c.relnamespace = v_oid AND k.contype IN ('p', 'u', 'c', 'f', 'x')
          AND k.conparentid = 0 AND k.conislocal
        GROUP BY k.conrelid),
    idx AS (
        SELECT i.indrelid,
               -- A partitioned table's index prints ON ONLY; replayed without it, so it is built on
               -- every partition too. A partition's copy of its parent's index comes with it.
               jsonb_object_agg(ic.relname::text,
                                replace(replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ' || v_prefix, ' ON '),
                                        ' ON ' || v_prefix, ' ON ')) AS indexes
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
        WHERE c.relnamespace = v_oid AND NOT ic.relispartition
          AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
        GROUP BY i.indrelid),
    pols AS (
        SELECT p.polrelid,
               jsonb_object_agg(p.polname::text, jsonb_build_object(
                   'cmd', CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                        WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                   'permissive', p.polpermissive,
                   'using', pg_get_expr(p.polqual, p.polrelid),
                   'check', pg_get_expr(p.polwithcheck, p.polrelid),
                   -- Quoted role names in name order; none for PUBLIC (polroles {0}).
                   'roles', (SELECT coalesce(jsonb_agg(quote_ident(r.rolname) ORDER BY r.rolname), '[]')
                             FROM pg_roles r WHERE r.oid = ANY (p.polroles)))) AS policies
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        WHERE c.relnamespace = v_oid
        GROUP BY p.polrelid),
    trigs AS (
        SELECT tg.tgrelid,
               jsonb_object_agg(tg.tgname::text,
                                tenancy._tenantize(replace(pg_get_triggerdef(tg.oid), ' ON ' || v_prefix, ' ON '), schema_name)) AS triggers
        FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
        WHERE c.relnamespace = v_oid AND NOT tg.tgisinternal AND tg.tgparentid = 0
        GROUP BY tg.tgrelid),
    tabs AS (
        SELECT c.relname::text AS name,
               jsonb_build_object(
                   'columns', coalesce(cols.columns, '[]'),
                   'constraints', coalesce(cons.constraints, '{}'),
                   'indexes', coalesce(idx.indexes, '{}'),
                   'rls', c.relrowsecurity, 'force_rls', c.relforcerowsecurity,
                   'policies', coalesce(pols.policies, '{}'),
                   'triggers', coalesce(trigs.triggers, '{}'),
                   'partition_by', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                   'partition_of', (SELECT jsonb_build_object(
                                        'schema', CASE WHEN pc.relnamespace <> v_oid THEN pn.nspname::text END,
                                        'table', pc.relname::text,
                                        'bound', pg_get_expr(c.relpartbound, c.oid))
                                    FROM pg_inherits ih JOIN pg_class pc ON pc.oid = ih.inhparent
                                    JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                                    WHERE c.relispartition AND ih.inhrelid = c.oid)) AS d
        FROM pg_class c
        LEFT JOIN cols ON cols.attrelid = c.oid
        LEFT JOIN cons ON cons.conrelid = c.oid
        LEFT JOIN idx ON idx.indrelid = c.oid
        LEFT JOIN pols ON pols.polrelid = c.oid
        LEFT JOIN trigs ON trigs.tgrelid = c.oid
        WHERE c.relnamespace = v_oid AND c.relkind IN ('r', 'p')),
    views AS (
        SELECT c.relname::text AS name,
               jsonb_build_object(
                   -- the schema's own name becomes @tenant@, so descriptions of tenants compare
                   'def', tenancy._tenantize(pg_get_viewdef(c.oid), schema_name),
                   'materialized', c.relkind = 'm',
                   'depends_on', coalesce((
                       SELECT jsonb_agg(DISTINCT rc.relname::text ORDER BY rc.relname::text)
                       FROM pg_rewrite r
                       JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                       JOIN pg_class rc ON rc.oid = d.refobjid
                       WHERE r.ev_class = c.oid AND rc.oid <> c.oid AND rc.relkind IN ('r', 'p', 'v', 'm')
                         AND rc.relnamespace = v_oid), '[]')) AS d
        FROM pg_class c WHERE c.relnamespace = v_oid AND c.relkind IN ('v', 'm')),
    funcs AS (
        SELECT format('%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid)) AS name,
               jsonb_build_object(
                   'def', tenancy._tenantize(
                              regexp_replace(pg_get_functiondef(p.oid),
                                             '^CREATE OR REPLACE (FUNCTION|PROCEDURE) ' || regexp_replace(v_prefix, '([^A-Za-z0-9_])', '\\\1', 'g'),
                                             'CREATE OR REPLACE \1 '),
                              schema_name),
                   'kind', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END) AS d
        FROM pg_proc p WHERE p.pronamespace = v_oid AND p.prokind IN ('f', 'p'))
    SELECT jsonb_build_object(
        'sequences', coalesce((SELECT jsonb_object_agg(name, d) FROM seqs), '{}'),
        'tables', coalesce((SELECT jsonb_object_agg(name, d) FROM tabs), '{}'),
        'views', coalesce((SELECT jsonb_object_agg(name, d) FROM views), '{}'),
        'functions', coalesce((SELECT jsonb_object_agg(name, d) FROM funcs), '{}'))
    INTO v_result;
    RETURN v_result;
END
$$;

-- A schema's description, built as its owner (see _describe_schema).
CREATE FUNCTION tenancy.describe_schema(schema_name name) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._describe_as_owner(schema_name::pg_catalog.text) $$;
