-- The core SQL surface, as a user sees it in psql. Errors print their SQLSTATE after them.
-- Self-contained: it runs in a database of its own, dropped at the end, so no file depends on
-- another's tenants or migrations.
\set regress_home :DBNAME
CREATE DATABASE regress_lifecycle;
\c regress_lifecycle
SET client_min_messages = warning;
CREATE EXTENSION pg_tenancy;
RESET client_min_messages;
\set SHOW_CONTEXT never
-- The application's own (public) migration: a shared table the tenant migrations reference.
CREATE TABLE public.plans (id bigint PRIMARY KEY, label text NOT NULL);
INSERT INTO public.plans VALUES (1, 'free'), (2, 'pro');

-- The embedded tenant migrations.
SELECT version, name, source FROM tenancy.migrations;

-- Three tenants, each created and migrated in the caller's transaction.
SELECT tenancy.create_tenant('acme');
SELECT tenancy.create_tenant('globex');
SELECT tenancy.create_tenant('initech');
SELECT * FROM tenancy.all_tenants();
SELECT schema_name, version, name, baselined FROM tenancy.ledger
 WHERE schema_name = 'acme' ORDER BY version;

-- A migration registered at runtime, applied to one tenant.
SELECT tenancy.add_migration('0006', 'add_invoices',
  'CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                          plan_id bigint NOT NULL REFERENCES public.plans (id),
                          amount numeric(12,2) NOT NULL)');
SELECT version, name, source FROM tenancy.migrations WHERE source = 'registered';
SELECT * FROM tenancy.migrate_tenant('acme');
SELECT * FROM tenancy.migrate_tenant('acme');
SELECT schema_name, count(*) FROM tenancy.ledger GROUP BY 1 ORDER BY 1;

-- Bad names are refused before any DDL runs.
SELECT tenancy.create_tenant('pg_evil');
\echo :LAST_ERROR_SQLSTATE
SELECT tenancy.create_tenant('public');
\echo :LAST_ERROR_SQLSTATE
SELECT tenancy.create_tenant(repeat('x', 64));
\echo :LAST_ERROR_SQLSTATE
SELECT tenancy.create_tenant('ACME');
\echo :LAST_ERROR_SQLSTATE
CREATE SCHEMA legacy;
SELECT tenancy.create_tenant('legacy');
\echo :LAST_ERROR_SQLSTATE

-- Adopting an existing schema, with a baseline.
SELECT tenancy.register_tenant('legacy', '0005');
SELECT version, baselined FROM tenancy.ledger WHERE schema_name = 'legacy' ORDER BY version;

-- Migrations that cannot run in a transaction are refused when loaded.
SELECT tenancy.add_migration('0007', 'concurrent_index',
  'CREATE INDEX CONCURRENTLY invoices_plan_idx ON invoices (plan_id)');
\echo :LAST_ERROR_SQLSTATE

-- A hostile name is just a name.
SELECT tenancy.create_tenant('a"; drop schema public cascade; --');
SELECT tenancy.rename_tenant('a"; drop schema public cascade; --', 'renamed; tenant');
SELECT count(*) AS public_tables FROM pg_tables WHERE schemaname = 'public';

-- A rename is refused while something in the tenant names its schema by text: after the rename
-- it would use whatever schema takes the old name next.
CREATE FUNCTION globex.user_count() RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM globex.users $$;
SELECT tenancy.rename_tenant('globex', 'globex_old');
\echo :LAST_ERROR_SQLSTATE
DROP FUNCTION globex.user_count();

-- Choosing a tenant for the rest of the transaction.
BEGIN;
SELECT tenancy.set_tenant('globex');
SHOW search_path;
SELECT tenancy.current_tenant();
INSERT INTO users (email) VALUES ('ceo@globex.example');
COMMIT;
SHOW search_path;
SELECT tenancy.current_tenant();
SELECT count(*) FROM globex.users;
SELECT tenancy.set_tenant('nobody');
\echo :LAST_ERROR_SQLSTATE

-- Detach keeps the schema; drop removes it and refuses schemas that are not tenants.
SELECT tenancy.detach_tenant('initech');
SELECT count(*) FROM pg_namespace WHERE nspname = 'initech';
SELECT tenancy.drop_tenant('initech');
\echo :LAST_ERROR_SQLSTATE
SELECT tenancy.drop_tenant('renamed; tenant');
SELECT * FROM tenancy.all_tenants();

\c :regress_home
DROP DATABASE regress_lifecycle;
