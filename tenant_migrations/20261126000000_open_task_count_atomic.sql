-- open_task_count with a SQL-standard body (PostgreSQL 14+): parsed when it is created, so it is
-- bound to this tenant's own tasks table (by OID) instead of naming the schema. 0005 wrote the
-- schema's name into the body through @tenant@; PostgreSQL keeps such a body as text, so after a
-- rename it would read whatever schema carries the old name next (issue 13), and
-- tenancy.rename_tenant refuses tenants holding such a body (docs/migrations.md, "Renames").
--
-- 0005 is applied everywhere and stays as it is (its checksum is in every ledger); this replaces
-- its function only where it is still what 0005 created, whatever schema name its body holds,
-- and its table is there. A tenant may reach this migration after later migrations of its own (a
-- new embedded version is applied to tenants that already have higher registered ones) that
-- changed or dropped them; those are left alone.
DO $do$
BEGIN
    IF pg_catalog.to_regclass('@tenant@.tasks') IS NOT NULL AND EXISTS (
        SELECT FROM pg_catalog.pg_proc p
        WHERE p.oid = pg_catalog.to_regprocedure('@tenant@.open_task_count(bigint)')
          AND p.prosqlbody IS NULL
          -- 0005's body, naming this schema or, in a tenant renamed before rename_tenant refused
          -- such tenants, the name it had then (which may now be another tenant's).
          AND p.prosrc ~ $re$\A\n        SELECT count\(\*\) FROM ".+"\.tasks\n        WHERE project_id = p_project AND done_at IS NULL\n    \Z$re$
    ) THEN
        EXECUTE $create$
            CREATE OR REPLACE FUNCTION open_task_count(p_project bigint) RETURNS bigint
                LANGUAGE sql STABLE
                BEGIN ATOMIC
                    SELECT count(*) FROM tasks
                    WHERE project_id = p_project AND done_at IS NULL;
                END
        $create$;
    END IF;
END
$do$;
