-- pg_tenancy 0.1.1 → 0.2.0
--
-- 0.1.1 is frozen in sql/released/. Every change of this wave to sql/*.sql or to a #[pg_extern]
-- signature adds its statements here: tests/integration/upgrade.sh compares ALTER EXTENSION
-- UPDATE with a fresh install, object by object.
-- (complain if script is sourced in psql rather than via ALTER EXTENSION)
\echo Use "ALTER EXTENSION pg_tenancy UPDATE TO '0.2.0'" to load this file. \quit
