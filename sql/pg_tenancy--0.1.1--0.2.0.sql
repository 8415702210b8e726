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
ALTER FUNCTION tenancy.reconcile(boolean) CALLED ON NULL INPUT;
ALTER FUNCTION tenancy._split_statements(text, text) CALLED ON NULL INPUT;


-- verify(NULL) raises instead of leaving out the deep checks silently.
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
        SELECT d.schema_name::name, d.problem FROM tenancy._verify_deep() d WHERE deep) v
    ORDER BY 1, 2;
END
$$;

-- describe_schema(NULL) raises 22004 instead of 3F000 "schema <NULL> does not exist", and
-- constraints are described structured (kind, columns, foreign-key target and clauses).
CREATE OR REPLACE FUNCTION tenancy.describe_schema(schema_name name) RETURNS jsonb
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
        WHERE c.relnamespace = v_oid AND k.contype IN ('p', 'u', 'c', 'f', 'x')
        GROUP BY k.conrelid),
    idx AS (
        SELECT i.indrelid,
               jsonb_object_agg(ic.relname::text, replace(pg_get_indexdef(i.indexrelid), ' ON ' || v_prefix, ' ON ')) AS indexes
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
        WHERE c.relnamespace = v_oid
          AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
        GROUP BY i.indrelid),
    pols AS (
        SELECT p.polrelid,
               jsonb_object_agg(p.polname::text, jsonb_build_object(
                   'cmd', CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                        WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                   'permissive', p.polpermissive,
                   'using', pg_get_expr(p.polqual, p.polrelid),
                   'check', pg_get_expr(p.polwithcheck, p.polrelid))) AS policies
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        WHERE c.relnamespace = v_oid
        GROUP BY p.polrelid),
    trigs AS (
        SELECT tg.tgrelid,
               jsonb_object_agg(tg.tgname::text,
                                tenancy._tenantize(replace(pg_get_triggerdef(tg.oid), ' ON ' || v_prefix, ' ON '), schema_name)) AS triggers
        FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
        WHERE c.relnamespace = v_oid AND NOT tg.tgisinternal
        GROUP BY tg.tgrelid),
    tabs AS (
        SELECT c.relname::text AS name,
               jsonb_build_object(
                   'columns', coalesce(cols.columns, '[]'),
                   'constraints', coalesce(cons.constraints, '{}'),
                   'indexes', coalesce(idx.indexes, '{}'),
                   'rls', c.relrowsecurity, 'force_rls', c.relforcerowsecurity,
                   'policies', coalesce(pols.policies, '{}'),
                   'triggers', coalesce(trigs.triggers, '{}')) AS d
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
