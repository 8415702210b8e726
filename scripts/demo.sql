\set QUIET on
\pset footer off
\set SHOW_CONTEXT never
\set ECHO queries
\echo
\echo '### 1. Install the extension. Everything lives in schema tenancy.'
CREATE EXTENSION pg_tenancy;

\echo
\echo '### 2. The application''s own public migration: a shared plan catalogue.'
\echo '###    Tenant migrations reference it as public.plans.'
CREATE TABLE public.plans (id bigint PRIMARY KEY, label text NOT NULL);
INSERT INTO public.plans VALUES (1, 'free'), (2, 'pro');
\echo '###    Tenants belong to an ordinary role, app: their migrations run as app (SECURITY.md), and'
\echo '###    app needs REFERENCES on the shared table its tenants reference.'
DO $$ BEGIN CREATE ROLE app NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT SELECT, REFERENCES ON public.plans TO app;

\echo
\echo '### 3. The tenant migrations compiled into the extension (tenant_migrations/).'
SELECT version, name, left(checksum, 12) AS checksum, source FROM tenancy.migrations;

\echo
\echo '### 4. Three tenants. Each create_tenant creates a schema, registers it and applies every'
\echo '###    tenant migration, all in the caller''s transaction.'
SELECT tenancy.create_tenant('acme', owner => 'app');
SELECT tenancy.create_tenant('globex', owner => 'app');
SELECT tenancy.create_tenant('initech', owner => 'app');
SELECT * FROM tenancy.all_tenants();

\echo
\echo '### 5. The ledger: what was applied to each tenant, with sha256 checksums.'
SELECT schema_name, version, name, left(checksum, 12) AS checksum
  FROM tenancy.ledger WHERE schema_name = 'acme' ORDER BY version;
SELECT schema_name, count(*) AS migrations, max(version) AS latest
  FROM tenancy.ledger GROUP BY 1 ORDER BY 1;

\echo
\echo '### 6. Foreign keys point inside each tenant, and at public.plans for the shared table.'
SELECT conrelid::regclass AS from_table, confrelid::regclass AS to_table
  FROM pg_constraint WHERE contype = 'f' AND connamespace = 'globex'::regnamespace ORDER BY 1, 2;

\echo
\echo '### 7. A migration registered at runtime (no rebuild), applied to one tenant.'
SELECT tenancy.add_migration('0006', 'add_invoices', $$
  CREATE TABLE invoices (
      id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      plan_id bigint NOT NULL REFERENCES public.plans (id),
      amount  numeric(12,2) NOT NULL
  );
  CREATE INDEX invoices_plan_idx ON invoices (plan_id);
$$);
SELECT * FROM tenancy.migrate_tenant('acme');
\echo '###    Running it again applies nothing:'
SELECT * FROM tenancy.migrate_tenant('acme');
SELECT schema_name, count(*) AS migrations FROM tenancy.ledger GROUP BY 1 ORDER BY 1;

\echo
\echo '### 8. Working inside a tenant: set_tenant sets search_path for this transaction.'
BEGIN;
SELECT tenancy.set_tenant('globex');
SHOW search_path;
INSERT INTO users (email, full_name) VALUES ('ceo@globex.example', 'Hank Scorpio');
INSERT INTO projects (name, owner_id) SELECT 'Doomsday device', id FROM users;
INSERT INTO tasks (project_id, title) SELECT id, 'Order more lasers' FROM projects;
SELECT tenancy.current_tenant(), open_task_count(1) AS open_tasks;
COMMIT;

\echo
\echo '### 9. Bad names are refused before any DDL, with an SQLSTATE and a hint.'
SELECT tenancy.create_tenant('pg_evil');
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
SELECT tenancy.create_tenant('ACME');
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
\echo '###    A hostile but legal name is only ever a quoted identifier:'
SELECT tenancy.create_tenant('x"; drop schema public cascade; --');
SELECT count(*) AS tables_still_in_public FROM pg_tables WHERE schemaname = 'public';

\echo
\echo '### 10. Rename, detach, drop.'
SELECT tenancy.rename_tenant('x"; drop schema public cascade; --', 'hooli');
SELECT tenancy.detach_tenant('initech');
SELECT tenancy.drop_tenant('hooli');
SELECT * FROM tenancy.all_tenants();

\echo
\echo '### 11. Managed tables: an organizations table whose rows ARE the tenants.'
\echo '###     Template [org_, :id]: inserting organization 10 creates schema org_10 and migrates it,'
\echo '###     from any client, inside the INSERT''s transaction.'
SET client_min_messages = warning;
CREATE TABLE organizations (id bigint PRIMARY KEY, name text NOT NULL);
SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'detach', owner => 'app');
SELECT * FROM tenancy.managed_tables;
INSERT INTO organizations VALUES (10, 'Umbrella'), (11, 'Cyberdyne'), (12, 'Tyrell');
SELECT * FROM tenancy.all_tenants();
SELECT schema_name, count(*) AS migrations FROM tenancy.ledger WHERE schema_name LIKE 'org%' GROUP BY 1 ORDER BY 1;

\echo
\echo '###     Changing the id renames the schema (ledger and registry follow); other updates do nothing.'
UPDATE organizations SET id = 100 WHERE id = 10;
UPDATE organizations SET name = 'Umbrella Corp' WHERE id = 100;
SELECT * FROM tenancy.all_tenants() AS t WHERE t LIKE 'org%';

\echo
\echo '###     Deleting a row: on_delete => detach keeps the schema and its data, unregistered.'
DELETE FROM organizations WHERE id = 11;
SELECT nspname AS schema, EXISTS (SELECT FROM tenancy.tenants WHERE schema_name = nspname) AS registered
  FROM pg_namespace WHERE nspname = 'org_11';

\echo '###     on_delete => drop drops the schema; TRUNCATE is then refused with a hint.'
SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], on_delete => 'drop', owner => 'app');
DELETE FROM organizations WHERE id = 12;
SELECT count(*) AS org_12_schemas FROM pg_namespace WHERE nspname = 'org_12';
TRUNCATE organizations;
\echo 'SQLSTATE' :LAST_ERROR_SQLSTATE
\echo '###     on_delete => keep (the default) leaves tenants alone when rows go.'
SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'], owner => 'app');
DELETE FROM organizations WHERE id = 100;
SELECT * FROM tenancy.all_tenants() AS t WHERE t LIKE 'org%';

\echo
RESET client_min_messages;
\echo '### 12. The fleet. 300 more organizations, provisioned in two INSERTs (one transaction each).'
INSERT INTO organizations SELECT g, 'customer ' || g FROM generate_series(1000, 1149) g;
INSERT INTO organizations SELECT g, 'customer ' || g FROM generate_series(1150, 1299) g;
SELECT count(*) AS tenants FROM tenancy.all_tenants();

\echo
\echo '###     A new tenant migration, and one tenant that will fail it (it already has the table).'
SELECT tenancy.add_migration('0007', 'add_labels', $$
  CREATE TABLE labels (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, task_id bigint REFERENCES tasks (id), label text NOT NULL);
  CREATE INDEX labels_task_idx ON labels (task_id);
$$);
CREATE TABLE org_1042.labels (id int);

\echo
\echo '###     CALL tenancy.migrate_all(jobs => 2): this session plus one background worker, committing'
\echo '###     after each tenant. Progress comes as NOTICEs; other sessions see tenancy.progress.'
CALL tenancy.migrate_all(jobs => 2);
SELECT run_id, jobs, workers, total, migrated, failed, up_to_date, state FROM tenancy.progress LIMIT 1;
SELECT state, count(*) FROM tenancy.status GROUP BY state ORDER BY state;
SELECT schema_name, pending, state, last_error FROM tenancy.status WHERE state <> 'up_to_date';

\echo
\echo '###     Fix the cause and run again: only the failed tenant is retried.'
DROP TABLE org_1042.labels;
CALL tenancy.migrate_all();
SELECT run_id, total, migrated, failed, up_to_date, state FROM tenancy.progress LIMIT 1;
\echo '###     Nothing pending: one query, whatever the number of tenants.'
CALL tenancy.migrate_all();

\echo
\echo '###     tenancy.verify() compares the registry with reality. A schema dropped behind our back:'
DROP SCHEMA org_1001 CASCADE;
SELECT * FROM tenancy.verify();
