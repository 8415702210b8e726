-- The fleet: CALL tenancy.migrate_all, its steps, tenancy.status, tenancy.progress, tenancy.verify.
-- migrate_all COMMITs after each tenant, so it cannot carry a SET clause (PostgreSQL would make
-- it atomic): its body only calls schema-qualified helpers, which pin their search_path.

-- A job joins its run: the coordinator when it plans the run, a background worker before its
-- first step. Its PID and backend start time in tenancy.fleet_jobs are how _fleet_wait and
-- progress tell that it is alive (tenancy._backend_alive): a PID alone may belong to a later
-- process, and application_name is anyone's to set. Returns false, recording nothing, when the
-- run no longer hands out tenants (a worker that starts after its run ended just exits).
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

-- Plans a run: one query finds the tenants with anything pending; they become the run's queue.
CREATE FUNCTION tenancy._fleet_begin(p_jobs integer, p_tenants name[], p_stop_on_error boolean,
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

-- One step: claim the next queued tenant, migrate it up to and including its first pending
-- migration that adds enum values (tenancy._migrate_step: the values must be committed before a
-- later migration uses them), record the outcome. A tenant with more pending stays queued for a
-- later step, after this one commits. Returns false when there was nothing to claim. The
-- coordinator (p_report: it also emits progress NOTICEs) and every background worker run this,
-- one transaction per call.
--
-- What it writes per tenant is the tenant's migration and ledger rows, nothing else that is
-- WAL-logged: the queue is UNLOGGED, and the run's counters are counted from it at most ten times
-- a second (_fleet_count). The outcome is written by this transaction itself, after the block's
-- subtransaction: a queue row locked by the one and updated by the other would need a multixact,
-- which is WAL-logged even for an UNLOGGED table.
CREATE FUNCTION tenancy._fleet_step(p_run bigint, p_report boolean DEFAULT false) RETURNS boolean
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

-- The run's counters in tenancy.fleet_runs (what tenancy.progress shows), counted from its queue
-- in the transaction of a step, so they never run ahead of what committed: at most ten times a
-- second (whichever job comes first), or at once with p_now. Then, for the coordinator (p_report),
-- progress NOTICEs: every tenth of the run or every 10 seconds.
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

-- After a step found nothing to claim: true (after a short sleep) while other jobs still work:
-- a live worker of the run (one that has not joined yet has claimed nothing), or a tenant still
-- queued while the run hands tenants out (a claimed tenant stays queued until its job commits; the
-- one of a job that died is unlocked and queued again, for this session to migrate).
CREATE FUNCTION tenancy._fleet_wait(p_run bigint) RETURNS boolean
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

-- Closes a run and reports: a summary NOTICE, a WARNING naming failed tenants, and an ERROR
-- when stop_on_error stopped it.
CREATE FUNCTION tenancy._fleet_finish(p_run bigint) RETURNS void
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

CREATE FUNCTION tenancy._fleet_launch_workers(p_run bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r tenancy.fleet_runs;
    v_started integer;
BEGIN
    SELECT * INTO r FROM tenancy.fleet_runs WHERE run_id = p_run;
    IF r.jobs < 2 OR r.total < 2 THEN
        RETURN;
    END IF;
    v_started := tenancy._fleet_launch(p_run, least(r.jobs, r.total) - 1);
    UPDATE tenancy.fleet_runs SET workers = v_started WHERE run_id = p_run;
    IF v_started < least(r.jobs, r.total) - 1 THEN
        RAISE NOTICE 'migrate_all: % of % background workers started (no free worker slots: max_worker_processes = %); this session migrates the rest',
            v_started, least(r.jobs, r.total) - 1, current_setting('max_worker_processes');
    END IF;
END
$$;

CREATE PROCEDURE tenancy.migrate_all(jobs integer DEFAULT 1, tenants name[] DEFAULT NULL,
                                     stop_on_error boolean DEFAULT false, lock_timeout text DEFAULT '5s')
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_run pg_catalog.int8;
BEGIN
    PERFORM tenancy._refuse_transaction_block();
    v_run := tenancy._fleet_begin(jobs, tenants, stop_on_error, lock_timeout);
    COMMIT;
    PERFORM tenancy._fleet_launch_workers(v_run);
    COMMIT;
    LOOP
        IF NOT tenancy._fleet_step(v_run, true) THEN
            EXIT WHEN NOT tenancy._fleet_wait(v_run);
        END IF;
        COMMIT;
    END LOOP;
    COMMIT;
    PERFORM tenancy._fleet_finish(v_run);
END
$$;

-- Where each tenant stands.
CREATE VIEW tenancy.status AS
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

-- Fleet runs, newest first, with live counters (each tenant commits on its own). A run that never
-- finished and has no live job (coordinator or worker, see _fleet_join) is 'interrupted'.
CREATE VIEW tenancy.progress AS
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
-- Managed tables follow DDL the same way (issue 13): a dropped managed table (DROP TABLE, or with
-- its schema or owner) is unregistered by tenancy._managed_ddl, and a partition created in or
-- attached to a managed table with on_delete => 'drop' gets its TRUNCATE guard. Other DDL (the
-- tables of a tenant's migrations, say) costs one catalog read here and no call.
CREATE FUNCTION tenancy._schema_ddl_trigger() RETURNS event_trigger
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
CREATE EVENT TRIGGER pg_tenancy_schema_ddl_start ON ddl_command_start
    WHEN TAG IN ('DROP SCHEMA', 'DROP OWNED', 'ALTER SCHEMA') EXECUTE FUNCTION tenancy._schema_ddl_trigger();
CREATE EVENT TRIGGER pg_tenancy_schema_dropped ON sql_drop
    WHEN TAG IN ('DROP SCHEMA', 'DROP OWNED', 'DROP TABLE') EXECUTE FUNCTION tenancy._schema_ddl_trigger();
CREATE EVENT TRIGGER pg_tenancy_schema_altered ON ddl_command_end
    WHEN TAG IN ('ALTER SCHEMA', 'CREATE TABLE', 'ALTER TABLE') EXECUTE FUNCTION tenancy._schema_ddl_trigger();

-- Registry against reality. Cheap checks: missing or renamed schemas, unknown ledger versions,
-- and tenants whose objects differ from most tenants with the same applied migrations.
CREATE FUNCTION tenancy._verify_registry() RETURNS TABLE (schema_name name, problem text)
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

-- deep => true also compares each tenant with what exactly its applied migrations produce (built
-- in a scratch schema once per distinct set of applied migrations): catches changed defaults,
-- constraints, function bodies. It runs DDL, so it is volatile and costs one build per set.
CREATE FUNCTION tenancy.verify(deep boolean DEFAULT false) RETURNS TABLE (schema_name name, problem text)
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
