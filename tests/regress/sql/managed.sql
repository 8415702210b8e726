-- Managed tables: rows provision, rename and retire tenants. Errors print their SQLSTATE.
-- Self-contained: it runs in a database of its own, dropped at the end, so no file depends on
-- another's tenants or migrations.
\set regress_home :DBNAME
CREATE DATABASE regress_managed;
\c regress_managed
SET client_min_messages = warning;
CREATE EXTENSION pg_tenancy;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS public.plans (id bigint PRIMARY KEY);
CREATE TABLE organizations (id bigint PRIMARY KEY, name text NOT NULL);
SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'drop');
SELECT table_name, template, on_create, on_update, on_delete FROM tenancy.managed_tables;

-- Inserting rows from any client creates and migrates their tenants.
INSERT INTO organizations VALUES (10, 'Acme'), (11, 'Globex');
SELECT * FROM tenancy.all_tenants() AS t WHERE t LIKE 'org%';
SELECT schema_name, count(*) FROM tenancy.ledger WHERE schema_name LIKE 'org%' GROUP BY 1 ORDER BY 1;

-- Changing the key renames the schema; other updates do nothing.
UPDATE organizations SET id = 100 WHERE id = 10;
UPDATE organizations SET name = 'Acme Corp' WHERE id = 100;
SELECT * FROM tenancy.all_tenants() AS t WHERE t LIKE 'org%';

-- Errors name the table and the tenant, and leave nothing behind.
CREATE SCHEMA org_12;
INSERT INTO organizations VALUES (12, 'Initech');
\echo :LAST_ERROR_SQLSTATE
SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':nope']);
\echo :LAST_ERROR_SQLSTATE
TRUNCATE organizations;
\echo :LAST_ERROR_SQLSTATE

-- Deleting a row drops its tenant (on_delete => 'drop').
DELETE FROM organizations WHERE id = 11;
SELECT * FROM tenancy.all_tenants() AS t WHERE t LIKE 'org%';

-- Crossing the lock ceiling of one transaction (default max_locks_per_transaction) fails
-- cleanly: one error with a hint, and not a single schema, registration or row is left.
DO $$
DECLARE h text;
BEGIN
    INSERT INTO organizations SELECT g, 'bulk' FROM generate_series(1000, 1999) AS g;
    RAISE WARNING 'all 1000 tenants fit';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RAISE WARNING 'SQLSTATE %; hint says smaller batches: %; hint says max_locks_per_transaction: %',
        SQLSTATE, h LIKE '%smaller batches%', h LIKE '%max_locks_per_transaction%';
END $$;
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname LIKE 'org\_1___';
SELECT count(*) AS tenants FROM tenancy.tenants WHERE schema_name LIKE 'org\_1___';
SELECT count(*) AS rows FROM organizations WHERE name = 'bulk';

SELECT tenancy.unmanage_tenant('organizations');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'organizations'::regclass;

\c :regress_home
DROP DATABASE regress_managed;
