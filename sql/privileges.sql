-- Privileges. Runs last (finalize), so it covers every routine and table created before it.

-- Out of the box nobody but superusers and the extension's owner runs DDL through pg_tenancy.
REVOKE ALL ON ALL ROUTINES IN SCHEMA tenancy FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tenancy FROM PUBLIC;
GRANT USAGE ON SCHEMA tenancy TO PUBLIC;
-- Reading which tenants exist and choosing one is what application roles need.
GRANT EXECUTE ON FUNCTION tenancy.all_tenants(), tenancy.current_tenant(),
    tenancy.set_tenant(text, boolean), tenancy._embedded_checksums() TO PUBLIC;
-- describe_schema runs _describe_schema as the described schema's owner, whoever that is; the
-- description reads only catalogs that PUBLIC can read anyway.
GRANT EXECUTE ON FUNCTION tenancy._describe_schema(name), tenancy._tenantize(text, name) TO PUBLIC;
-- tenancy._backend_alive (used by tenancy.progress and the fleet) is not PUBLIC's: it would confirm
-- guesses of other roles' session start times, which pg_stat_activity hides. grant_admin gives it.
-- PUBLIC sees names and states, never errors (last_error can hold data values from a failed
-- statement) or migration texts (_embedded_migrations, tenancy.registered_migrations).
GRANT SELECT ON tenancy.migrations, tenancy.managed_tables, tenancy.attribute_tenants TO PUBLIC;
GRANT SELECT (schema_name, name_key, schema_oid, registered_at, failed_at) ON tenancy.tenants TO PUBLIC;
-- The schema event triggers call it as whoever runs the DDL; it records only what the catalog confirms.
GRANT EXECUTE ON FUNCTION tenancy._schema_ddl(oid[]) TO PUBLIC;
-- The DDL event triggers call it as whoever runs the DDL: it removes only registrations of tables
-- the catalog no longer has, and adds the TRUNCATE guard only to partitions of managed tables with
-- on_delete => 'drop' (as the caller, who owns them and, to have created or attached them, could
-- run tenancy._managed_row, so also tenancy._managed_truncate).
GRANT EXECUTE ON FUNCTION tenancy._managed_ddl(oid[]) TO PUBLIC;
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
-- Snapshots (sql/snapshot.sql): the extras of a schema are read as its owner, whoever that is;
-- they read catalogs PUBLIC can read and the schema's own tables with the owner's rights. The
-- fingerprint says nothing but a hash (tenancy.snapshot_status compares it).
GRANT EXECUTE ON FUNCTION tenancy._snapshot_extras(name), tenancy._snapshot_sequence(regclass),
    tenancy._snapshot_fingerprint(text) TO PUBLIC;
