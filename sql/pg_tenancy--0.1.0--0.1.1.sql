-- pg_tenancy 0.1.0 → 0.1.1
--
-- 0.1.0 is the first released version (its install script is frozen in sql/released/).
-- Nothing in the SQL objects changed since; every later change to sql/*.sql or to a #[pg_extern]
-- signature must add its statements here (or to the next upgrade script), because
-- tests/integration/upgrade.sh compares ALTER EXTENSION UPDATE with a fresh install.
-- (complain if script is sourced in psql rather than via ALTER EXTENSION)
\echo Use "ALTER EXTENSION pg_tenancy UPDATE TO '0.1.1'" to load this file. \quit
