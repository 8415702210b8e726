-- pg_tenancy 0.1.1 → 0.2.0
--
-- 0.1.1 is frozen in sql/released/. Every change of this wave to sql/*.sql or to a #[pg_extern]
-- signature adds its statements here: tests/integration/upgrade.sh compares ALTER EXTENSION
-- UPDATE with a fresh install, object by object.
-- (complain if script is sourced in psql rather than via ALTER EXTENSION)
\echo Use "ALTER EXTENSION pg_tenancy UPDATE TO '0.2.0'" to load this file. \quit

-- One rule for NULL arguments: 22004 naming the parameter. Functions that were STRICT (and so
-- returned nothing for a NULL, which reads as "all fine") now raise.
ALTER FUNCTION tenancy.compare_schemas(text, text) CALLED ON NULL INPUT;
ALTER FUNCTION tenancy._split_statements(text, text) CALLED ON NULL INPUT;


-- describe_schema(NULL) raises 22004 instead of 3F000 "schema <NULL> does not exist", and
-- constraints are described structured (kind, columns, foreign-key target and clauses).
-- (Its catalog queries; describe_schema itself now runs them as the described schema's owner,
-- see below.)
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
GRANT EXECUTE ON FUNCTION tenancy._describe_schema(name), tenancy._tenantize(text, name) TO PUBLIC;
CREATE FUNCTION tenancy."_describe_as_owner"(
	"schema_name" TEXT
) RETURNS jsonb
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'describe_as_owner_wrapper';
REVOKE ALL ON FUNCTION tenancy._describe_as_owner(text) FROM PUBLIC;
-- A schema's description, built as its owner (see _describe_schema).
CREATE OR REPLACE FUNCTION tenancy.describe_schema(schema_name name) RETURNS jsonb
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._describe_as_owner(schema_name::pg_catalog.text) $$;
-- Roles that could run describe_schema (grant_admin before this upgrade) may run it still.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee::regrole AS role
             FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
             WHERE p.oid = 'tenancy.describe_schema(name)'::regprocedure
               AND a.grantee <> 0 AND a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE'
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION tenancy._describe_as_owner(text) TO %s', g.role);
    END LOOP;
END
$$;

-- Fleet workers: _fleet_launch refuses NULL (22004 naming the parameter; it was STRICT) and bad
-- arguments.
ALTER FUNCTION tenancy._fleet_launch(bigint, integer) CALLED ON NULL INPUT;

-- Every job of a run (its coordinator and each worker) is tracked by PID and backend start time
-- in tenancy.fleet_jobs, which neither application_name (anyone's to set) nor a reused PID can
-- fake; _fleet_wait and progress look there.
CREATE TABLE tenancy.fleet_jobs (
    run_id         bigint      NOT NULL REFERENCES tenancy.fleet_runs ON DELETE CASCADE,
    pid            integer     NOT NULL,
    backend_start  timestamptz NOT NULL,
    worker         boolean     NOT NULL,   -- false: the coordinator
    PRIMARY KEY (run_id, pid, backend_start)
);
REVOKE ALL ON tenancy.fleet_jobs FROM PUBLIC;

CREATE FUNCTION tenancy._backend_alive("pid" integer, "backend_start" timestamp with time zone) RETURNS boolean
    VOLATILE SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'backend_alive_wrapper';
REVOKE ALL ON FUNCTION tenancy._backend_alive(integer, timestamptz) FROM PUBLIC;
-- Not PUBLIC's: roles given tenancy.grant_admin before this upgrade get it as they got the fleet.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee::regrole AS role
             FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
             WHERE p.oid = 'tenancy._fleet_step(bigint, boolean)'::regprocedure
               AND a.grantee <> 0 AND a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE'
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION tenancy._backend_alive(integer, timestamptz) TO %s', g.role);
    END LOOP;
END
$$;

CREATE FUNCTION tenancy._backend_start() RETURNS timestamp with time zone
    STRICT STABLE SET search_path TO pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'backend_start_wrapper';
REVOKE ALL ON FUNCTION tenancy._backend_start() FROM PUBLIC;

CREATE FUNCTION tenancy._fleet_join(p_run bigint, p_worker boolean) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM tenancy.fleet_runs r WHERE r.run_id = p_run AND r.state = 'running') THEN
        RETURN false;
    END IF;
    INSERT INTO tenancy.fleet_jobs (run_id, pid, backend_start, worker)
    VALUES (p_run, pg_backend_pid(), tenancy._backend_start(), p_worker);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION tenancy._fleet_join(bigint, boolean) FROM PUBLIC;

-- Roles given tenancy.grant_admin before this upgrade get the same rights on the new table and
-- functions as on the fleet's existing ones, so their migrate_all keeps working.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee::regrole AS role, string_agg(a.privilege_type, ', ') AS privileges
             FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) AS a
             WHERE c.oid = 'tenancy.fleet_runs'::regclass AND a.grantee <> 0 AND a.grantee <> c.relowner
             GROUP BY a.grantee
    LOOP
        EXECUTE format('GRANT %s ON tenancy.fleet_jobs TO %s', g.privileges, g.role);
    END LOOP;
    FOR g IN SELECT a.grantee::regrole AS role
             FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
             WHERE p.oid = 'tenancy._fleet_step(bigint, boolean)'::regprocedure
               AND a.grantee <> 0 AND a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE'
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION tenancy._fleet_join(bigint, boolean), tenancy._backend_start() TO %s',
                       g.role);
    END LOOP;
END
$$;


-- The coordinator joins its run.
CREATE OR REPLACE FUNCTION tenancy._fleet_begin(p_jobs integer, p_tenants name[], p_stop_on_error boolean,
                                     p_lock_timeout text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_run pg_catalog.int8;
    v_unknown text;
    v_considered integer;
BEGIN
    -- NULL is refused for every parameter but tenants (NULL: every tenant), as everywhere else.
    IF p_jobs IS NULL THEN
        RAISE EXCEPTION 'tenancy.migrate_all: jobs must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass a value for jobs, e.g. CALL tenancy.migrate_all(jobs => 2).';
    END IF;
    IF p_jobs < 1 THEN
        RAISE EXCEPTION 'tenancy.migrate_all: jobs must be at least 1, not %', p_jobs
            USING ERRCODE = '22023', HINT = 'jobs => 1 migrates in this session; jobs => N adds N - 1 background workers.';
    END IF;
    IF p_stop_on_error IS NULL THEN
        RAISE EXCEPTION 'tenancy.migrate_all: stop_on_error must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass a value for stop_on_error, e.g. CALL tenancy.migrate_all(stop_on_error => true).';
    END IF;
    IF p_lock_timeout IS NULL THEN
        RAISE EXCEPTION 'tenancy.migrate_all: lock_timeout must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass a value for lock_timeout, e.g. CALL tenancy.migrate_all(lock_timeout => ''0'') to wait without a limit.';
    END IF;
    -- Validates the value (22023 from PostgreSQL for a bad one); applied per tenant by _fleet_step.
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    IF array_position(p_tenants, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'tenancy.migrate_all: tenants must not contain NULL'
            USING ERRCODE = '22004', HINT = 'List tenant names, e.g. CALL tenancy.migrate_all(tenants => ARRAY[''org_1'']), or pass NULL for every tenant.';
    END IF;
    IF cardinality(p_tenants) = 0 THEN
        RAISE EXCEPTION 'tenancy.migrate_all: tenants is empty'
            USING ERRCODE = '22023', HINT = 'List tenant names, e.g. CALL tenancy.migrate_all(tenants => ARRAY[''org_1'']), or pass NULL for every tenant.';
    END IF;
    IF p_tenants IS NOT NULL THEN
        SELECT string_agg(quote_ident(u), ', ' ORDER BY u) INTO v_unknown
        FROM unnest(p_tenants) AS u
        WHERE NOT EXISTS (SELECT FROM tenancy.tenants t WHERE t.schema_name = u);
        IF v_unknown IS NOT NULL THEN
            RAISE EXCEPTION 'tenancy.migrate_all: not registered tenants: %', v_unknown
                USING ERRCODE = '42704', HINT = 'SELECT * FROM tenancy.all_tenants() lists the tenants.';
        END IF;
    END IF;
    SELECT count(*) INTO v_considered FROM tenancy.tenants t
    WHERE p_tenants IS NULL OR t.schema_name = ANY (p_tenants);

    INSERT INTO tenancy.fleet_runs (jobs, stop_on_error, lock_timeout, considered, total)
    VALUES (p_jobs, p_stop_on_error, p_lock_timeout, v_considered, 0)
    RETURNING run_id INTO v_run;
    PERFORM tenancy._fleet_join(v_run, false);

    -- The one query: every tenant whose ledger lacks a known version.
    WITH known AS (SELECT array_agg(m.version) AS versions FROM tenancy.migrations AS m),
         applied AS (
             SELECT l.schema_name, count(*) AS n
             FROM tenancy.ledger AS l, known
             WHERE l.version = ANY (known.versions)
             GROUP BY l.schema_name)
    INSERT INTO tenancy.fleet_items (run_id, schema_name)
    SELECT v_run, t.schema_name
    FROM tenancy.tenants AS t
    CROSS JOIN known
    LEFT JOIN applied AS a ON a.schema_name = t.schema_name
    WHERE coalesce(a.n, 0) < coalesce(cardinality(known.versions), 0)
      AND (p_tenants IS NULL OR t.schema_name = ANY (p_tenants));

    UPDATE tenancy.fleet_runs SET total = (SELECT count(*) FROM tenancy.fleet_items i WHERE i.run_id = v_run)
    WHERE run_id = v_run;
    RETURN v_run;
END
$$;

-- Waits on live workers by (pid, backend_start), not on sessions named like workers.
CREATE OR REPLACE FUNCTION tenancy._fleet_wait(p_run bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF EXISTS (SELECT FROM tenancy.fleet_jobs j
               WHERE j.run_id = p_run AND j.worker AND tenancy._backend_alive(j.pid, j.backend_start))
       OR EXISTS (SELECT FROM tenancy.fleet_items i JOIN tenancy.fleet_runs r USING (run_id)
                  WHERE i.run_id = p_run AND i.state = 'queued' AND r.state = 'running') THEN
        PERFORM pg_sleep(0.05);
        RETURN true;
    END IF;
    RETURN false;
END
$$;

-- 'interrupted' when no job of the run is alive by (pid, backend_start).
CREATE OR REPLACE VIEW tenancy.progress AS
    SELECT r.run_id, r.started_at, r.finished_at, r.started_by, r.jobs, r.workers,
           r.considered - r.total AS up_to_date, r.total, r.migrated, r.failed,
           r.total - r.migrated - r.failed AS remaining,
           round(100.0 * (r.migrated + r.failed) / greatest(r.total, 1), 1) AS percent,
           CASE WHEN r.finished_at IS NULL
                 AND NOT EXISTS (SELECT FROM tenancy.fleet_jobs j
                                 WHERE j.run_id = r.run_id AND tenancy._backend_alive(j.pid, j.backend_start))
                THEN 'interrupted' ELSE r.state END AS state,
           coalesce(r.finished_at, clock_timestamp()) - r.started_at AS elapsed
    FROM tenancy.fleet_runs AS r
    ORDER BY r.run_id DESC;

-- ---------------------------------------------------------------------------------------------
-- Trust boundaries (SECURITY.md, "The model"): tenant SQL runs as the tenant schema's owner in a
-- security-restricted operation; migrations run only where their author has the owner's rights;
-- pg_tenancy's registry is written only through its functions.

-- A managed table names the owner of the tenants its rows create (NULL: the inserting role).
ALTER TABLE tenancy.managed_table_settings ADD COLUMN owner regrole;
CREATE OR REPLACE VIEW tenancy.managed_tables AS
    SELECT s.tbl AS table_name, s.template, s.on_create, s.on_update, s.on_delete, s.managed_at, s.owner
    FROM tenancy.managed_table_settings AS s
    ORDER BY s.tbl::pg_catalog.text;

-- create_tenant and manage_tenant take an owner.
DROP FUNCTION tenancy.create_tenant(text);
DROP FUNCTION tenancy._create_tenant(text);
CREATE FUNCTION tenancy."_create_tenant"(
	"schema" TEXT,
	"owner" oid
) RETURNS TEXT
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'create_tenant_owned_wrapper';
CREATE FUNCTION tenancy.create_tenant(schema text, owner regrole DEFAULT NULL) RETURNS name
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._create_tenant(schema, owner::pg_catalog.oid)::pg_catalog.name $$;

DROP FUNCTION tenancy.manage_tenant(regclass, text[], boolean, boolean, text);
DROP FUNCTION tenancy._manage_tenant(oid, text[], boolean, boolean, text);
CREATE FUNCTION tenancy."_manage_tenant"(
	"tbl" oid,
	"template" TEXT[],
	"on_create" bool,
	"on_update" bool,
	"on_delete" TEXT,
	"owner" oid
) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'manage_tenant_owned_wrapper';
CREATE FUNCTION tenancy.manage_tenant(tbl regclass, template text[], on_create boolean DEFAULT true,
                                      on_update boolean DEFAULT true, on_delete text DEFAULT 'keep',
                                      owner regrole DEFAULT NULL)
    RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._manage_tenant(tbl::pg_catalog.oid, template, on_create, on_update, on_delete,
                                        owner::pg_catalog.oid) $$;

-- reconcile can hand objects of mixed ownership to the tenant's owner.
DROP FUNCTION tenancy.reconcile(boolean);
CREATE FUNCTION tenancy."reconcile"(
	"dry_run" bool DEFAULT true,
	"fix_owners" bool DEFAULT false
) RETURNS TABLE (
	"schema_name" TEXT,
	"action" TEXT
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'reconcile_owners_wrapper';

-- The migrations view no longer needs the texts of the embedded set, which PUBLIC may not read.
CREATE FUNCTION tenancy."_embedded_checksums"() RETURNS TABLE (
	"version" TEXT,
	"name" TEXT,
	"checksum" TEXT
)
STRICT STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'embedded_checksums_wrapper';
CREATE OR REPLACE VIEW tenancy.migrations AS
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

-- The fleet records failures through a function, not by writing tenancy.tenants.
CREATE FUNCTION tenancy."_record_failure"(
	"schema" TEXT,
	"error" TEXT
) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'record_failure_wrapper';

-- verify(NULL) raises 22004 instead of leaving out the deep checks silently, and verify reports
-- superuser-owned tenants, mixed owners, missing REFERENCES, tampered texts.
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


CREATE OR REPLACE FUNCTION tenancy.verify(deep boolean DEFAULT false) RETURNS TABLE (schema_name name, problem text)
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF deep IS NULL THEN
        RAISE EXCEPTION 'tenancy.verify: deep must not be NULL'
            USING ERRCODE = '22004', HINT = 'Pass a value for deep, e.g. SELECT * FROM tenancy.verify(deep => true).';
    END IF;
    RETURN QUERY
    SELECT v.schema_name, v.problem FROM (
        SELECT r.schema_name, r.problem FROM tenancy._verify_registry() r
        UNION ALL
        SELECT m.schema_name::name, m.problem FROM tenancy._verify_managed() m
        UNION ALL
        SELECT o.schema_name, o.problem FROM tenancy._verify_trust() o
        UNION ALL
        SELECT c.schema_name::name, c.problem FROM tenancy._verify_citus() c
        UNION ALL
        SELECT s.schema_name, s.problem FROM tenancy._verify_shared() s
        UNION ALL
        SELECT d.schema_name::name, d.problem FROM tenancy._verify_deep() d WHERE deep) v
    ORDER BY 1, 2;
END
$$;

-- Grants by level; grant_admin keeps its name as the broadest. _migrate_step (issue 13) joins the
-- provision level (the fleet), remove_migration the author level.
CREATE OR REPLACE FUNCTION tenancy._grant(role regrole, level integer, caller text) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    provision CONSTANT text[] := ARRAY[
        'create_tenant', '_create_tenant', 'register_tenant', '_register_tenant', 'rename_tenant',
        '_rename_tenant', 'detach_tenant', 'drop_tenant', 'migrate_tenant', 'migrate_all',
        '_fleet_join', '_fleet_begin', '_fleet_step', '_fleet_wait', '_fleet_finish',
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

CREATE FUNCTION tenancy.grant_provision(role regrole) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._grant(role, 1, 'grant_provision') $$;

CREATE FUNCTION tenancy.grant_author(role regrole) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._grant(role, 2, 'grant_author') $$;

CREATE OR REPLACE FUNCTION tenancy.grant_admin(role regrole) RETURNS void
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenancy._grant(role, 3, 'grant_admin') $$;

-- Issue 13 ("Routine operations never break tenants"), case 1: tenants survive pg_upgrade. The
-- registry's schema OIDs are trusted only in the cluster that wrote them; hand-made drops and
-- renames of tenant schemas are noted on the tenant's row by event triggers; tenancy.relink.
ALTER TABLE tenancy.tenants ALTER COLUMN schema_oid DROP NOT NULL;
ALTER TABLE tenancy.tenants ADD COLUMN schema_dropped_at timestamptz, ADD COLUMN schema_renamed_to name;

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

-- pg_restore re-creates the tenant schemas (pre-data) under their names but with new OIDs, then
-- loads this table's rows with the dumped OIDs. Re-link a row whose OID does not belong to the
-- schema of its name (or of the name it was renamed to by hand) to the schema that now has that
-- name, or to none; a row without a schema (dropped behind pg_tenancy's back) stays without one.
-- Rows written by pg_tenancy itself always match and pass through unchanged.
CREATE OR REPLACE FUNCTION tenancy._relink_restored_tenant() RETURNS trigger
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
CREATE FUNCTION tenancy."_system_identifier"() RETURNS bigint
STRICT STABLE PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'system_identifier_wrapper';

CREATE FUNCTION tenancy."_schema_ddl"("oids" oid[]) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'schema_ddl_wrapper';

CREATE FUNCTION tenancy."relink"("dry_run" bool DEFAULT true) RETURNS TABLE ("schema_name" TEXT, "action" TEXT)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'relink_wrapper';

-- Each tenant with the OID of its schema in this cluster; everything that reads the registry
-- reads OIDs here, never from tenancy.tenants directly. Where the registry was written in this
-- cluster (tenancy.registry_cluster), the registered OID. After a pg_upgrade, until the first
-- write re-links the registry, the schema that has the tenant's name (or the name it was renamed
-- to behind pg_tenancy's back); none for a tenant without a schema (dropped behind pg_tenancy's
-- back), whatever now has its name. Reads only: works for any reader and on a hot standby.
CREATE VIEW tenancy._tenant_schemas AS
    SELECT t.schema_name, t.name_key,
           CASE WHEN h.home OR t.schema_oid IS NULL THEN t.schema_oid
                ELSE (SELECT n.oid FROM pg_catalog.pg_namespace AS n
                      WHERE n.nspname OPERATOR(pg_catalog.=) coalesce(t.schema_renamed_to, t.schema_name))
           END AS schema_oid,
           t.schema_dropped_at
    FROM tenancy.tenants AS t
    CROSS JOIN (SELECT (SELECT c.system_identifier FROM tenancy.registry_cluster AS c)
                       IS NOT DISTINCT FROM tenancy._system_identifier() AS home) AS h;

-- Schema DDL made outside pg_tenancy (DROP SCHEMA, DROP OWNED, ALTER SCHEMA … RENAME) is noted on
-- the tenant's row, which pg_upgrade keeps (OIDs it does not). This function runs as the role
-- running the DDL; tenancy._schema_ddl writes, as the extension's owner, only what the catalog
-- confirms. At ddl_command_start it only re-links a registry that came across a pg_upgrade, so
-- that the OIDs the later events report are the registry's.
CREATE FUNCTION tenancy._schema_ddl_trigger() RETURNS event_trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_EVENT = 'sql_drop' THEN
        PERFORM tenancy._schema_ddl(ARRAY(SELECT d.objid FROM pg_event_trigger_dropped_objects() AS d
                                          WHERE d.classid = 'pg_namespace'::regclass));
    ELSIF TG_EVENT = 'ddl_command_end' THEN
        PERFORM tenancy._schema_ddl(ARRAY(SELECT d.objid FROM pg_event_trigger_ddl_commands() AS d
                                          WHERE d.classid = 'pg_namespace'::regclass));
    ELSE
        PERFORM tenancy._schema_ddl(ARRAY[]::oid[]);
    END IF;
END
$$;
CREATE EVENT TRIGGER pg_tenancy_schema_ddl_start ON ddl_command_start
    WHEN TAG IN ('DROP SCHEMA', 'DROP OWNED', 'ALTER SCHEMA') EXECUTE FUNCTION tenancy._schema_ddl_trigger();
CREATE EVENT TRIGGER pg_tenancy_schema_dropped ON sql_drop
    WHEN TAG IN ('DROP SCHEMA', 'DROP OWNED') EXECUTE FUNCTION tenancy._schema_ddl_trigger();
CREATE EVENT TRIGGER pg_tenancy_schema_altered ON ddl_command_end
    WHEN TAG IN ('ALTER SCHEMA') EXECUTE FUNCTION tenancy._schema_ddl_trigger();

-- Registry against reality. Cheap checks: missing or renamed schemas, unknown ledger versions,
-- and tenants whose objects differ from most tenants with the same applied migrations.
CREATE OR REPLACE FUNCTION tenancy._verify_registry() RETURNS TABLE (schema_name name, problem text)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT t.schema_name,
           CASE WHEN EXISTS (SELECT FROM pg_namespace n WHERE n.nspname = t.schema_name)
                THEN format('the registered schema was dropped behind pg_tenancy''s back%s and another schema now has its name; if that schema is the tenant''s (restored by hand, say), tenancy.relink(dry_run => false) links it; tenancy.detach_tenant removes the registration and deletes the tenant''s ledger',
                            ' at ' || t.schema_dropped_at)
                ELSE format('the registered schema no longer exists (dropped behind pg_tenancy''s back%s); restore it and run tenancy.relink(dry_run => false), or remove the registration with tenancy.detach_tenant (it deletes the tenant''s ledger)',
                            ' at ' || t.schema_dropped_at)
           END
    FROM tenancy._tenant_schemas t
    WHERE NOT EXISTS (SELECT FROM pg_namespace n WHERE n.oid = t.schema_oid)
    UNION ALL
    SELECT t.schema_name,
           format('the schema was renamed to %I behind pg_tenancy''s back; ALTER SCHEMA %I RENAME TO %I puts it back',
                  n.nspname, n.nspname, t.schema_name)
    FROM tenancy._tenant_schemas t JOIN pg_namespace n ON n.oid = t.schema_oid
    WHERE n.nspname <> t.schema_name
    UNION ALL
    SELECT l.schema_name, format('the ledger names migration %s_%s, which is not a known tenant migration', l.version, l.name)
    FROM tenancy.ledger l
    WHERE NOT EXISTS (SELECT FROM tenancy.migrations m WHERE m.version = l.version)
    UNION ALL
    (WITH shape AS (
         SELECT t.schema_name,
                (SELECT string_agg(l.version, ',' ORDER BY l.version) FROM tenancy.ledger l
                 WHERE l.schema_name = t.schema_name) AS applied,
                s.sig
         FROM tenancy._tenant_schemas t
         JOIN (SELECT c.relnamespace,
                      md5(string_agg(format('%s:%s:%s', c.relname, c.relkind, a.cols), ';' ORDER BY c.relname)) AS sig
               FROM pg_class c
               LEFT JOIN (SELECT a.attrelid,
                                 string_agg(format('%s %s%s', a.attname, ty.typname, CASE WHEN a.attnotnull THEN '!' END),
                                            ',' ORDER BY a.attnum) AS cols
                          FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
                          WHERE a.attnum > 0 AND NOT a.attisdropped
                          GROUP BY a.attrelid) a ON a.attrelid = c.oid
               WHERE c.relnamespace IN (SELECT ts.schema_oid FROM tenancy._tenant_schemas ts)
               GROUP BY c.relnamespace) s ON s.relnamespace = t.schema_oid),
     counted AS (
         SELECT applied, sig, count(*) AS n, max(count(*)) OVER (PARTITION BY applied) AS top
         FROM shape GROUP BY applied, sig)
     SELECT s.schema_name,
            format('its tables, columns or indexes differ from those of %s other tenants with the same applied migrations', c.top)
     FROM shape s JOIN counted c ON c.applied IS NOT DISTINCT FROM s.applied AND c.sig = s.sig
     WHERE c.n < c.top)
$$;

-- Trust (SECURITY.md): tenants whose migrations would run as a superuser, objects not owned by
-- the tenant's owner (tables a migration created before 0.2.0 belong to whoever ran it), shared
-- tables that tenant foreign keys reference but the tenant's owner may not reference, and
-- registered migrations whose text no longer matches its checksum (edited outside add_migration).
CREATE FUNCTION tenancy._verify_trust() RETURNS TABLE (schema_name name, problem text)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $$
    WITH tenant AS (
        SELECT t.schema_name, n.oid AS nsp, r.oid AS owner, r.rolname, r.rolsuper
        FROM tenancy._tenant_schemas t
        JOIN pg_namespace n ON n.oid = t.schema_oid
        JOIN pg_roles r ON r.oid = n.nspowner)
    SELECT t.schema_name,
           format('owned by superuser %I: its migrations run with superuser rights; give it an ordinary owner (ALTER SCHEMA %I OWNER TO <role>, then tenancy.reconcile(dry_run => false, fix_owners => true))',
                  t.rolname, t.schema_name)
    FROM tenant t WHERE t.rolsuper
    UNION ALL
    SELECT t.schema_name,
           format('%s of its objects are not owned by the tenant''s owner %I (first: %s); tenancy.reconcile(dry_run => false, fix_owners => true) gives them to it',
                  o.n, t.rolname, o.first)
    FROM tenant t
    CROSS JOIN LATERAL (
        SELECT count(*) AS n, min(x.what) AS first
        FROM tenancy._foreign_owned(t.nsp, t.owner) AS x) AS o
    WHERE o.n > 0
    UNION ALL
    SELECT t.schema_name,
           format('its owner %I lacks REFERENCES on %s, which tenant foreign keys reference; GRANT REFERENCES ON %s TO %I',
                  t.rolname, k.confrelid::regclass, k.confrelid::regclass, t.rolname)
    FROM tenant t
    CROSS JOIN (SELECT DISTINCT c.confrelid
                FROM pg_constraint c
                JOIN pg_class f ON f.oid = c.conrelid
                JOIN pg_class s ON s.oid = c.confrelid
                WHERE c.contype = 'f'
                  AND f.relnamespace IN (SELECT tt.schema_oid FROM tenancy._tenant_schemas tt)
                  AND NOT EXISTS (SELECT FROM tenancy._tenant_schemas tt WHERE tt.schema_oid = s.relnamespace)) AS k
    WHERE NOT has_table_privilege(t.owner, k.confrelid, 'REFERENCES')
    UNION ALL
    SELECT NULL::name,
           format('registered migration %s_%s: its text was changed outside tenancy.add_migration (it no longer matches its checksum); tenants that still need it cannot migrate until its original text is restored',
                  m.version, m.name)
    FROM tenancy.registered_migrations m
    WHERE encode(sha256(convert_to(m.sql, 'UTF8')), 'hex') <> m.checksum
$$;

REVOKE ALL ON FUNCTION tenancy._system_identifier(), tenancy.relink(boolean),
    tenancy._schema_ddl_trigger() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy._schema_ddl(oid[]) TO PUBLIC;

-- Privileges. Nobody but the extension's owner writes the registry tables any more; every role
-- that held rights on pg_tenancy (given by grant_admin before) gets grant_admin's new set.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT DISTINCT a.grantee::regrole AS role
             FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) AS a
             WHERE c.relnamespace = 'tenancy'::regnamespace AND a.grantee <> 0 AND a.grantee <> c.relowner
               AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE')
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON tenancy.tenants, tenancy.ledger, '
                       'tenancy.registered_migrations, tenancy.managed_table_settings, '
                       'tenancy.attribute_tables, tenancy.attribute_tenants FROM %s', g.role);
        PERFORM tenancy._grant(g.role, 3, 'grant_admin');
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION tenancy._create_tenant(text, oid), tenancy.create_tenant(text, regrole),
    tenancy._manage_tenant(oid, text[], boolean, boolean, text, oid),
    tenancy.manage_tenant(regclass, text[], boolean, boolean, text, regrole),
    tenancy.reconcile(boolean, boolean), tenancy._record_failure(text, text),
    tenancy._foreign_owned(oid, oid), tenancy._verify_trust(), tenancy._grant(regrole, integer, text),
    tenancy.grant_provision(regrole), tenancy.grant_author(regrole), tenancy._embedded_checksums()
    FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenancy._embedded_migrations() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy._embedded_checksums() TO PUBLIC;
REVOKE SELECT ON tenancy.tenants FROM PUBLIC;
GRANT SELECT (schema_name, name_key, schema_oid, registered_at, failed_at) ON tenancy.tenants TO PUBLIC;

-- issue 13 case 8, small input-validation items (small13): current_tenant() reports a tenant
-- dropped, renamed or detached after set_tenant chose it instead of returning its stale name.
-- The tenant set_tenant chose, once it checks out: the schema set_tenant put on search_path
-- (tenancy.tenant_oid) still has the tenant's name and is still a registered tenant. A tenant
-- dropped, renamed or detached since is reported (55000), never returned: the session's
-- search_path would otherwise use whatever schema has that name now.
CREATE OR REPLACE FUNCTION tenancy.current_tenant() RETURNS name
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

-- ---------------------------------------------------------------------------------------------
-- Issue 13, case 2 (branch enum13): migrations that need their own transaction, and withdrawing
-- migrations. CALL migrate_all commits after each migration that adds enum values (a step per
-- commit: tenancy._migrate_step); tenancy.remove_migration withdraws a registered migration no
-- tenant has applied.

CREATE FUNCTION tenancy."_migrate_step"(
	"schema" TEXT /* Option < & str > */
) RETURNS TABLE (
	"applied" INT,  /* i32 */
	"more" bool  /* bool */
)
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migrate_step_wrapper';

CREATE FUNCTION tenancy."remove_migration"(
	"version" TEXT /* Option < & str > */
) RETURNS TEXT /* String */
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'remove_migration_wrapper';

REVOKE ALL ON FUNCTION tenancy._migrate_step(text), tenancy.remove_migration(text) FROM PUBLIC;

-- One step: claim the next queued tenant, migrate it up to and including its first pending
-- migration that adds enum values (tenancy._migrate_step: the values must be committed before a
-- later migration uses them), record the outcome. A tenant with more pending stays queued for a
-- later step, after this one commits. Returns false when there was nothing to claim. The
-- coordinator (p_report: it also emits progress NOTICEs) and every background worker run this,
-- one transaction per call.
CREATE OR REPLACE FUNCTION tenancy._fleet_step(p_run bigint, p_report boolean DEFAULT false) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_tenant name;
    v_lock_timeout text;
    v_applied integer;
    v_more boolean;
    v_state text;
    v_message text;
    r tenancy.fleet_runs;
BEGIN
    SELECT i.schema_name, f.lock_timeout INTO v_tenant, v_lock_timeout
    FROM tenancy.fleet_items AS i JOIN tenancy.fleet_runs AS f USING (run_id)
    WHERE i.run_id = p_run AND i.state = 'queued' AND f.state = 'running'
    ORDER BY i.schema_name
    LIMIT 1
    FOR UPDATE OF i SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    BEGIN
        PERFORM set_config('lock_timeout', v_lock_timeout, true);
        SELECT s.applied, s.more INTO v_applied, v_more FROM tenancy._migrate_step(v_tenant) AS s;
        IF v_more THEN
            UPDATE tenancy.fleet_items SET applied = coalesce(applied, 0) + v_applied
            WHERE run_id = p_run AND schema_name = v_tenant;
            SELECT * INTO r FROM tenancy.fleet_runs WHERE run_id = p_run;
        ELSE
            UPDATE tenancy.fleet_items
            SET state = 'done', applied = coalesce(applied, 0) + v_applied, finished_at = clock_timestamp()
            WHERE run_id = p_run AND schema_name = v_tenant;
            UPDATE tenancy.fleet_runs SET migrated = migrated + 1 WHERE run_id = p_run RETURNING * INTO r;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        -- This step's migrations are rolled back with this block (earlier steps of the tenant
        -- stay committed); record why.
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
        UPDATE tenancy.fleet_items SET state = 'failed', error = v_state || ': ' || v_message,
                                       finished_at = clock_timestamp()
        WHERE run_id = p_run AND schema_name = v_tenant;
        PERFORM tenancy._record_failure(v_tenant, v_state || ': ' || v_message);
        UPDATE tenancy.fleet_runs
        SET failed = failed + 1, state = CASE WHEN stop_on_error THEN 'stopping' ELSE state END
        WHERE run_id = p_run
        RETURNING * INTO r;
    END;
    -- Progress at a sensible cadence: every tenth of the run or every 10 seconds.
    IF p_report AND (r.migrated + r.failed - r.notified_count >= greatest(1, r.total / 10)
                     OR clock_timestamp() - r.notified_at >= interval '10 seconds') THEN
        RAISE NOTICE 'migrate_all: %/% tenants (% %%), % failed, %s elapsed',
            r.migrated + r.failed, r.total, round(100.0 * (r.migrated + r.failed) / greatest(r.total, 1)), r.failed,
            round(extract(epoch FROM clock_timestamp() - r.started_at)::numeric, 1);
        UPDATE tenancy.fleet_runs SET notified_count = r.migrated + r.failed, notified_at = clock_timestamp()
        WHERE run_id = p_run;
    END IF;
    RETURN true;
END
$$;



-- ---------------------------------------------------------------------------------------------
-- Issue 13, cases 4, 5 and the managed-table items of 8 (branch managed13): managed tables follow
-- DDL. A dropped managed table is unregistered; verify and reconcile report and skip a dangling
-- registration; tenants remember the managed table whose row created them (verify reports those
-- no row names any more); a detached tenant of a managed table keeps its ledger, and its row,
-- inserted again, re-adopts it; the TRUNCATE guard covers partitions.

-- the managed table whose row created (or re-adopted) the tenant; cleared when that table is
-- dropped. verify() reports a tenant of a 'detach' or 'drop' table that no row names.
ALTER TABLE tenancy.tenants ADD COLUMN managed_by regclass;

-- Tenants of a managed table that were detached while their schema stayed (by their row's DELETE
-- under on_delete => 'detach', or by tenancy.detach_tenant): their ledger as it was, so that
-- inserting the row again re-adopts the schema with exactly what was applied to it. Forgotten when
-- the schema or the table is dropped, or the schema is registered by hand.
CREATE TABLE tenancy.detached_tenants (
    schema_name  name        PRIMARY KEY,
    schema_oid   oid         NOT NULL,
    managed_by   regclass    NOT NULL,
    -- the tenant's tenancy.ledger rows: version, name, checksum, applied_at, seconds, baselined
    ledger       jsonb       NOT NULL,
    detached_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE tenancy.detached_tenants IS 'pg_tenancy: detached tenants of managed tables, re-adopted when their row comes back';
SELECT pg_catalog.pg_extension_config_dump('tenancy.detached_tenants', '');

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

-- The TRUNCATE guard of a managed table with on_delete => 'drop' (deleting its rows drops their
-- tenants, TRUNCATE would skip that). Statement triggers are not inherited, so it is installed on
-- the table and on each of its partitions, by manage_tenant and, for partitions created or
-- attached later, by the DDL event trigger (sql/fleet.sql). It checks the settings when it fires:
-- a partition detached since, or a table whose policy changed, truncates normally.
CREATE OR REPLACE FUNCTION tenancy._managed_truncate() RETURNS trigger
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

CREATE FUNCTION tenancy."_managed_ddl"("oids" oid[]) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'managed_ddl_wrapper';

-- Managed tables follow DDL the same way (issue 13): a dropped managed table (DROP TABLE, or with
-- its schema or owner) is unregistered by tenancy._managed_ddl, and a partition created in or
-- attached to a managed table with on_delete => 'drop' gets its TRUNCATE guard. Other DDL (the
-- tables of a tenant's migrations, say) costs one catalog read here and no call.
CREATE OR REPLACE FUNCTION tenancy._schema_ddl_trigger() RETURNS event_trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_schemas oid[];
    v_tables oid[];
BEGIN
    IF TG_EVENT = 'sql_drop' THEN
        SELECT coalesce(array_agg(d.objid) FILTER (WHERE d.classid = 'pg_namespace'::regclass), '{}'),
               coalesce(array_agg(d.objid) FILTER (WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
                                                     AND d.object_type = 'table'), '{}')
        INTO v_schemas, v_tables
        FROM pg_event_trigger_dropped_objects() AS d;
        IF TG_TAG <> 'DROP TABLE' THEN
            PERFORM tenancy._schema_ddl(v_schemas);
        END IF;
        IF cardinality(v_tables) > 0
           AND EXISTS (SELECT FROM tenancy.managed_tables AS m WHERE m.table_name::oid = ANY (v_tables)) THEN
            PERFORM tenancy._managed_ddl(v_tables);
        END IF;
    ELSIF TG_EVENT = 'ddl_command_end' AND TG_TAG = 'ALTER SCHEMA' THEN
        PERFORM tenancy._schema_ddl(ARRAY(SELECT d.objid FROM pg_event_trigger_ddl_commands() AS d
                                          WHERE d.classid = 'pg_namespace'::regclass));
    ELSIF TG_EVENT = 'ddl_command_end' THEN
        -- Only DDL on partitions or partitioned tables (not every CREATE TABLE of a migration).
        v_tables := ARRAY(SELECT d.objid FROM pg_event_trigger_ddl_commands() AS d
                          JOIN pg_class AS c ON c.oid = d.objid
                          WHERE d.classid = 'pg_class'::regclass AND (c.relispartition OR c.relkind = 'p'));
        IF cardinality(v_tables) > 0
           AND EXISTS (SELECT FROM tenancy.managed_tables AS m WHERE m.on_delete = 'drop') THEN
            PERFORM tenancy._managed_ddl(v_tables);
        END IF;
    ELSE
        PERFORM tenancy._schema_ddl(ARRAY[]::oid[]);
    END IF;
END
$$;
DROP EVENT TRIGGER pg_tenancy_schema_dropped;
CREATE EVENT TRIGGER pg_tenancy_schema_dropped ON sql_drop
    WHEN TAG IN ('DROP SCHEMA', 'DROP OWNED', 'DROP TABLE') EXECUTE FUNCTION tenancy._schema_ddl_trigger();
DROP EVENT TRIGGER pg_tenancy_schema_altered;
CREATE EVENT TRIGGER pg_tenancy_schema_altered ON ddl_command_end
    WHEN TAG IN ('ALTER SCHEMA', 'CREATE TABLE', 'ALTER TABLE') EXECUTE FUNCTION tenancy._schema_ddl_trigger();

-- Partitions of managed tables with on_delete => 'drop' that have no TRUNCATE guard of their own
-- yet get one (as the extension's owner, who runs this script and may not own them: the guard is
-- the extension's, like the triggers manage_tenant installs).
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT DISTINCT t.relid
             FROM tenancy.managed_table_settings s, pg_catalog.pg_partition_tree(s.tbl) t
             WHERE s.on_delete = 'drop' AND t.relid <> s.tbl
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g
                               WHERE g.tgrelid = t.relid AND g.tgname = 'tenancy_truncate')
    LOOP
        EXECUTE format('CREATE TRIGGER tenancy_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION tenancy._managed_truncate()',
                       p.relid);
    END LOOP;
END
$$;

-- Citus (issue 14): where each distributed tenant lives (tenancy.status gets a last column,
-- node), moving one, and what verify() reports there. Granted with the provision level below.
CREATE FUNCTION tenancy."_tenant_nodes"() RETURNS TABLE (
	"schema_name" TEXT,  /* String */
	"node" TEXT  /* String */
)
STRICT STABLE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'tenant_nodes_wrapper';
CREATE FUNCTION tenancy."_verify_citus"() RETURNS TABLE (
	"schema_name" TEXT,  /* Option < String > */
	"problem" TEXT  /* String */
)
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_citus_wrapper';
CREATE FUNCTION tenancy."move_tenant"(
	"schema" TEXT, /* Option < & str > */
	"node" TEXT, /* Option < & str > */
	"port" INT, /* Option < i32 > */
	"transfer_mode" TEXT DEFAULT 'auto' /* Option < & str > */
) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'move_tenant_wrapper';
REVOKE ALL ON FUNCTION tenancy._tenant_nodes(), tenancy._verify_citus(),
    tenancy.move_tenant(text, text, integer, text) FROM PUBLIC;
CREATE OR REPLACE VIEW tenancy.status AS
    WITH known AS (SELECT m.version, m.checksum FROM tenancy.migrations AS m)
    SELECT t.schema_name,
           (SELECT l.version FROM tenancy.ledger l WHERE l.schema_name = t.schema_name
            ORDER BY l.version::numeric DESC LIMIT 1) AS version,
           p.pending,
           CASE WHEN d.drifted THEN 'drifted'
                WHEN t.last_error IS NOT NULL THEN 'failed'
                WHEN p.pending > 0 THEN 'pending'
                ELSE 'up_to_date' END AS state,
           t.last_error,
           (SELECT max(l.applied_at) FROM tenancy.ledger l WHERE l.schema_name = t.schema_name) AS migrated_at,
           -- On Citus, the worker (host:port) holding a distributed tenant; NULL otherwise.
           nd.node
    FROM tenancy.tenants AS t
    LEFT JOIN tenancy._tenant_nodes() AS nd ON nd.schema_name = t.schema_name
    CROSS JOIN LATERAL (
        SELECT count(*)::integer AS pending FROM known k
        WHERE NOT EXISTS (SELECT FROM tenancy.ledger l WHERE l.schema_name = t.schema_name AND l.version = k.version)) AS p
    CROSS JOIN LATERAL (
        SELECT EXISTS (SELECT FROM tenancy.ledger l JOIN known k USING (version)
                       WHERE l.schema_name = t.schema_name AND l.checksum <> k.checksum) AS drifted) AS d;

-- Privileges as a fresh install has them (sql/privileges.sql), and the roles given a grant level
-- before get it again, so that they reach the new table and functions.
REVOKE ALL ON FUNCTION tenancy._relink_restored_detached() FROM PUBLIC;
REVOKE ALL ON TABLE tenancy.detached_tenants FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy._managed_ddl(oid[]) TO PUBLIC;
-- Every role granted a level before this upgrade gets that level again, so also what issue 13
-- added to it (_migrate_step at the provision level, remove_migration at the author level).
DO $$
DECLARE
    g record;
BEGIN
    -- Roles granted EXECUTE directly (not through membership) on what each level gives.
    FOR g IN SELECT a.grantee::regrole AS role,
                    max(CASE p.proname WHEN '_manage_tenant' THEN 3 WHEN 'add_migration' THEN 2 ELSE 1 END) AS level
             FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
             WHERE p.pronamespace = 'tenancy'::regnamespace
               AND p.proname IN ('_manage_tenant', 'add_migration', 'verify')
               AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
             GROUP BY a.grantee
    LOOP
        PERFORM tenancy._grant(g.role, g.level, 'grant_admin');
    END LOOP;
END
$$;


-- Locks and deadlocks (issue 13, case 7): drop_tenant takes its locks up front within a lock
-- timeout, its own argument or the setting tenancy.drop_lock_timeout. The new signature gets the
-- grants the old one had; the old symbol stays in the library for 0.1.x definitions (compat.rs).
CREATE FUNCTION tenancy."drop_tenant"(
	"schema" TEXT, /* Option < & str > */
	"lock_timeout" interval DEFAULT NULL /* Option < Interval > */
) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_tenant_within_wrapper';
REVOKE ALL ON FUNCTION tenancy.drop_tenant(text, interval) FROM PUBLIC;
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee::regrole AS role
             FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
             WHERE p.oid = 'tenancy.drop_tenant(text)'::regprocedure AND a.privilege_type = 'EXECUTE'
               AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION tenancy.drop_tenant(text, interval) TO %s', g.role);
    END LOOP;
END
$$;
DROP FUNCTION tenancy.drop_tenant(text);


-- Issue 15, shared references (branch sharedref): tenant references to shared tables without
-- fan-in. tenancy.share_table (run by the shared table's owner), tenancy.reference_shared (in
-- tenant migrations), their registry tables and triggers, verify() reporting native foreign keys
-- from tenants to shared tables. Existing native foreign keys stay until a tenant migration
-- replaces them (docs/functions/reference_shared.md, "Converting existing tenants").
CREATE FUNCTION tenancy."_share_table"(
	"tbl" oid, /* Option < pg_sys :: Oid > */
	"key" TEXT[] /* :: std :: option :: Option < Vec < Option < String > > > */
) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'share_table_wrapper';
CREATE FUNCTION tenancy."_reference_shared"(
	"tbl" oid, /* Option < pg_sys :: Oid > */
	"columns" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"shared_tbl" oid, /* Option < pg_sys :: Oid > */
	"key" TEXT[], /* :: std :: option :: Option < Vec < Option < String > > > */
	"on_delete" TEXT /* Option < & str > */
) RETURNS TEXT /* String */
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'reference_shared_wrapper';
CREATE FUNCTION tenancy."_shared_ddl"(
	"oids" oid[] /* :: std :: option :: Option < Vec < Option < pg_sys :: Oid > > > */
) RETURNS void
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'shared_ddl_wrapper';
CREATE FUNCTION tenancy."_shared_ref_check"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', '_shared_ref_check_wrapper';
CREATE FUNCTION tenancy."_shared_guard"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', '_shared_guard_wrapper';
CREATE FUNCTION tenancy."_shared_truncate"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', '_shared_truncate_wrapper';

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

REVOKE ALL ON FUNCTION tenancy._shared_ddl_trigger() FROM PUBLIC;
-- Shared references (sql/shared.sql). share_table checks that the caller has the shared table's
-- owner's rights, reference_shared that it owns the referencing table and has REFERENCES on the
-- shared key (as for a native foreign key): tenant migrations, which run as the tenant's owner,
-- call it. The trigger functions are only ever called as triggers (creating one needs them); each
-- checks its registration. _verify_shared reads catalogs PUBLIC can read; verify calls it.
GRANT EXECUTE ON FUNCTION tenancy.share_table(regclass, name[]), tenancy._share_table(oid, text[]),
    tenancy.reference_shared(regclass, name[], regclass, name[], text),
    tenancy._reference_shared(oid, text[], oid, text[], text),
    tenancy._shared_ref_check(), tenancy._shared_guard(), tenancy._shared_truncate(),
    tenancy._shared_ddl(oid[]), tenancy._verify_shared() TO PUBLIC;
GRANT SELECT ON tenancy.shared_tables, tenancy.shared_references TO PUBLIC;
-- Roles given a level before this upgrade reach the new objects as roles given it afterwards do.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee::regrole AS role,
                    max(CASE p.proname WHEN '_manage_tenant' THEN 3 WHEN 'add_migration' THEN 2 ELSE 1 END) AS level
             FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
             WHERE p.pronamespace = 'tenancy'::regnamespace
               AND p.proname IN ('_manage_tenant', 'add_migration', 'verify')
               AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
             GROUP BY a.grantee
    LOOP
        PERFORM tenancy._grant(g.role, g.level, 'grant_admin');
    END LOOP;
END
$$;


-- Issue 15, lean fleet steps: a tenant's step in migrate_all writes nothing WAL-logged but its
-- migration and its ledger rows (docs/fleet.md, "What a tenant costs"). The queue is UNLOGGED;
-- the run's counters are counted from it at most ten times a second (_fleet_count) and exactly when
-- the run ends; a step's outcome is written outside its subtransaction (no multixact).
ALTER TABLE tenancy.fleet_runs ADD COLUMN counted_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp();
ALTER TABLE tenancy.fleet_items SET UNLOGGED;
CREATE OR REPLACE FUNCTION tenancy._fleet_step(p_run bigint, p_report boolean DEFAULT false) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_tenant name;
    v_lock_timeout text;
    v_applied integer;
    v_more boolean;
    v_state text;
    v_message text;
    v_counted_at timestamptz;
BEGIN
    SELECT i.schema_name, f.lock_timeout, f.counted_at INTO v_tenant, v_lock_timeout, v_counted_at
    FROM tenancy.fleet_items AS i JOIN tenancy.fleet_runs AS f USING (run_id)
    WHERE i.run_id = p_run AND i.state = 'queued' AND f.state = 'running'
    ORDER BY i.schema_name
    LIMIT 1
    FOR UPDATE OF i SKIP LOCKED;
    IF NOT FOUND THEN
        -- Nothing left for this job: a worker (or a caller stepping by hand) leaves the counters
        -- exact; the coordinator counts at the usual cadence and exactly in _fleet_finish.
        PERFORM tenancy._fleet_count(p_run, p_report, NOT p_report);
        RETURN false;
    END IF;
    BEGIN
        PERFORM set_config('lock_timeout', v_lock_timeout, true);
        SELECT s.applied, s.more INTO v_applied, v_more FROM tenancy._migrate_step(v_tenant) AS s;
    EXCEPTION WHEN OTHERS THEN
        -- This step's migrations are rolled back with this block (earlier steps of the tenant
        -- stay committed); record why, below.
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
    END;
    IF v_state IS NOT NULL THEN
        UPDATE tenancy.fleet_items SET state = 'failed', error = v_state || ': ' || v_message,
                                       finished_at = clock_timestamp()
        WHERE run_id = p_run AND schema_name = v_tenant;
        PERFORM tenancy._record_failure(v_tenant, v_state || ': ' || v_message);
        UPDATE tenancy.fleet_runs SET state = 'stopping' WHERE run_id = p_run AND stop_on_error;
    ELSIF v_more THEN
        UPDATE tenancy.fleet_items SET applied = coalesce(applied, 0) + v_applied
        WHERE run_id = p_run AND schema_name = v_tenant;
    ELSE
        UPDATE tenancy.fleet_items
        SET state = 'done', applied = coalesce(applied, 0) + v_applied, finished_at = clock_timestamp()
        WHERE run_id = p_run AND schema_name = v_tenant;
    END IF;
    -- A failure is counted at once (it is rare, and stop_on_error reads it); otherwise only when
    -- the counters are older than a tenth of a second as the claim saw them (_fleet_count checks
    -- again on the locked row), so that most steps skip the call.
    IF v_state IS NOT NULL OR v_counted_at <= clock_timestamp() - interval '100 milliseconds' THEN
        PERFORM tenancy._fleet_count(p_run, p_report, v_state IS NOT NULL);
    END IF;
    RETURN true;
END
$$;

CREATE FUNCTION tenancy._fleet_count(p_run bigint, p_report boolean, p_now boolean) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r record;
BEGIN
    IF NOT p_now AND EXISTS (SELECT FROM tenancy.fleet_runs f
                             WHERE f.run_id = p_run AND f.counted_at > clock_timestamp() - interval '100 milliseconds') THEN
        RETURN;
    END IF;
    UPDATE tenancy.fleet_runs AS f
    SET migrated = c.migrated, failed = c.failed, counted_at = clock_timestamp()
    FROM (SELECT count(*) FILTER (WHERE i.state = 'done')::integer AS migrated,
                 count(*) FILTER (WHERE i.state = 'failed')::integer AS failed
          FROM tenancy.fleet_items AS i WHERE i.run_id = p_run) AS c
    -- Checked again on the row as it is once locked: another job may just have counted.
    WHERE f.run_id = p_run AND (p_now OR f.counted_at <= clock_timestamp() - interval '100 milliseconds')
    RETURNING f.total, f.migrated, f.failed, f.started_at, f.notified_count, f.notified_at INTO r;
    IF p_report AND r.total IS NOT NULL
       AND (r.migrated + r.failed - r.notified_count >= greatest(1, r.total / 10)
            OR clock_timestamp() - r.notified_at >= interval '10 seconds') THEN
        RAISE NOTICE 'migrate_all: %/% tenants (% %%), % failed, %s elapsed',
            r.migrated + r.failed, r.total, round(100.0 * (r.migrated + r.failed) / greatest(r.total, 1)), r.failed,
            round(extract(epoch FROM clock_timestamp() - r.started_at)::numeric, 1);
        UPDATE tenancy.fleet_runs SET notified_count = r.migrated + r.failed, notified_at = clock_timestamp()
        WHERE run_id = p_run;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION tenancy._fleet_finish(p_run bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r tenancy.fleet_runs;
    v_failures text;
BEGIN
    -- The counters exactly, from the queue (while the run went they lagged by up to 0.1 s).
    UPDATE tenancy.fleet_runs AS f
    SET finished_at = clock_timestamp(), state = CASE WHEN f.state = 'running' THEN 'finished' ELSE 'stopped' END,
        migrated = c.migrated, failed = c.failed, counted_at = clock_timestamp()
    FROM (SELECT count(*) FILTER (WHERE i.state = 'done')::integer AS migrated,
                 count(*) FILTER (WHERE i.state = 'failed')::integer AS failed
          FROM tenancy.fleet_items AS i WHERE i.run_id = p_run) AS c
    WHERE f.run_id = p_run
    RETURNING f.* INTO r;
    IF r.total = 0 THEN
        RAISE NOTICE 'migrate_all: nothing to do, % tenants up to date', r.considered;
        RETURN;
    END IF;
    RAISE NOTICE 'migrate_all: % migrated, % already up to date, % failed, in %s (jobs %, % background workers)',
        r.migrated, r.considered - r.total, r.failed,
        round(extract(epoch FROM r.finished_at - r.started_at)::numeric, 1), r.jobs, r.workers;
    IF r.failed > 0 THEN
        SELECT string_agg(format('%I: %s', i.schema_name, i.error), E'\n' ORDER BY i.schema_name)
        INTO v_failures
        FROM (SELECT * FROM tenancy.fleet_items WHERE run_id = p_run AND state = 'failed'
              ORDER BY schema_name LIMIT 10) AS i;
        IF r.state = 'stopped' THEN
            RAISE EXCEPTION 'migrate_all stopped after a tenant failed (stop_on_error): %', v_failures
                USING ERRCODE = '55000',
                      HINT = 'Tenants migrated before the failure stay migrated. Fix the cause and CALL tenancy.migrate_all() again; it retries only what is pending.';
        END IF;
        RAISE WARNING 'migrate_all: % tenants failed (first ones below); tenancy.status shows each error', r.failed
            USING DETAIL = v_failures,
                  HINT = 'Fix the cause and CALL tenancy.migrate_all() again: it retries only pending and failed tenants.';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION tenancy._grant(role regrole, level integer, caller text) RETURNS void
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

REVOKE ALL ON FUNCTION tenancy._fleet_count(bigint, boolean, boolean) FROM PUBLIC;
-- Whoever may run a step (the provision level and above) may count.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee::regrole AS role
             FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
             WHERE p.oid = 'tenancy._fleet_step(bigint, boolean)'::regprocedure AND a.privilege_type = 'EXECUTE'
               AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION tenancy._fleet_count(bigint, boolean, boolean) TO %s', g.role);
    END LOOP;
END
$$;

-- Issue 15, baseline snapshots (branch baseline): new tenants built from a proven, squashed
-- form of the migration set (tenancy.build_snapshot, tenancy.snapshot_status; docs/snapshots.md).
-- Existing tenants and their ledgers are untouched (from_snapshot is false for every row).
CREATE FUNCTION tenancy."_build_snapshot"(
	"owner" oid /* Option < pg_sys :: Oid > */
) RETURNS TABLE (
	"path" TEXT,  /* String */
	"reason" TEXT  /* String */
)
VOLATILE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'build_snapshot_wrapper';
CREATE FUNCTION tenancy."drop_snapshot"() RETURNS bool /* bool */
STRICT VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_snapshot_wrapper';
CREATE FUNCTION tenancy."_snapshot_fingerprint"(
	"owner" TEXT /* Option < & str > */
) RETURNS TEXT /* Option < String > */
STABLE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'snapshot_fingerprint_wrapper';
CREATE FUNCTION tenancy."_snapshot_mine"(
	"xid" bigint /* i64 */
) RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE 
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'snapshot_mine_wrapper';

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

REVOKE ALL ON FUNCTION tenancy._build_snapshot(oid), tenancy.build_snapshot(regrole), tenancy.drop_snapshot(),
    tenancy._snapshot_mine(bigint), tenancy._snapshot_fingerprint(text), tenancy._snapshot_extras(name),
    tenancy._snapshot_refs(name), tenancy._snapshot_sequence(regclass), tenancy._snapshot_unprovable(name),
    tenancy._snapshot_home(oid, oid[]), tenancy._snapshot_touched(oid[]), tenancy._publication_schemas() FROM PUBLIC;
REVOKE ALL ON tenancy.snapshot, tenancy.snapshot_status FROM PUBLIC;
-- Snapshots (sql/snapshot.sql): the extras of a schema are read as its owner, whoever that is;
-- they read catalogs PUBLIC can read and the schema's own tables with the owner's rights. The
-- fingerprint says nothing but a hash (tenancy.snapshot_status compares it).
GRANT EXECUTE ON FUNCTION tenancy._snapshot_extras(name), tenancy._snapshot_sequence(regclass),
    tenancy._snapshot_fingerprint(text) TO PUBLIC;
-- Roles given a level before this upgrade reach the new objects as roles given it afterwards do.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee::regrole AS role,
                    max(CASE p.proname WHEN '_manage_tenant' THEN 3 WHEN 'add_migration' THEN 2 ELSE 1 END) AS level
             FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a
             WHERE p.pronamespace = 'tenancy'::regnamespace
               AND p.proname IN ('_manage_tenant', 'add_migration', 'verify')
               AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
             GROUP BY a.grantee
    LOOP
        PERFORM tenancy._grant(g.role, g.level, 'grant_admin');
    END LOOP;
END
$$;
