-- The migration generator: small edits to a template produce minimal migrations.
-- Self-contained: it runs in a database of its own, dropped at the end, so no file depends on
-- another's tenants or migrations.
\set regress_home :DBNAME
CREATE DATABASE regress_generator;
\c regress_generator
SET client_min_messages = warning;
CREATE EXTENSION pg_tenancy;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS public.plans (id bigint PRIMARY KEY);
\pset format unaligned
\pset tuples_only on
SELECT tenancy.create_tenant('acme');
SELECT tenancy.create_template('tmpl');
-- Untouched: nothing to do.
SELECT tenancy.generate_migration('tmpl');

-- Add a column.
ALTER TABLE tmpl.users ADD COLUMN locale text NOT NULL DEFAULT 'en';
SELECT tenancy.generate_migration('tmpl');
ALTER TABLE tmpl.users DROP COLUMN locale;

-- Drop an index.
DROP INDEX tmpl.tasks_open_idx;
SELECT tenancy.generate_migration('tmpl');
CREATE INDEX tasks_open_idx ON tmpl.tasks USING btree (assignee_id) WHERE done_at IS NULL;

-- Change a default.
ALTER TABLE tmpl.projects ALTER COLUMN archived SET DEFAULT true;
SELECT tenancy.generate_migration('tmpl');
ALTER TABLE tmpl.projects ALTER COLUMN archived SET DEFAULT false;

-- Add a foreign key to a shared table: it stays qualified.
ALTER TABLE tmpl.comments ADD COLUMN plan_id bigint REFERENCES public.plans (id);
SELECT tenancy.generate_migration('tmpl');
ALTER TABLE tmpl.comments DROP COLUMN plan_id;

-- A new table referencing the template's own tables: references come out unqualified.
CREATE TABLE tmpl.labels (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id bigint NOT NULL REFERENCES tmpl.tasks (id) ON DELETE CASCADE,
    label text NOT NULL CHECK (label <> '')
);
SELECT tenancy.generate_migration('tmpl');

-- Back to the migrations' shape.
DROP TABLE tmpl.labels;
SELECT tenancy.generate_migration('tmpl');
SELECT count(*) AS differences FROM tenancy.compare_schemas('tmpl', 'acme');

\c :regress_home
DROP DATABASE regress_generator;
