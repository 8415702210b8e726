-- pg_tenancy: what the 0.2.0 trust model (SECURITY.md) treats differently. Run it with psql in
-- each database BEFORE `ALTER EXTENSION pg_tenancy UPDATE` to 0.2.0 (it also runs after):
--   psql -d app -f scripts/trust-precheck.sql
-- It only reads. Each row is one finding: what, which object, and what to do.
--
-- Since 0.2.0 every migration runs as the tenant schema's owner, only if its author (the role that
-- registered it; the extension's owner for embedded ones) has that owner's privileges, and
-- statements that cannot run in a security-restricted operation are refused at registration.
-- The statement checks below are approximations with regular expressions (the extension's own
-- check uses a lexer): a finding is worth a look, not proof.
SELECT kind, subject, detail FROM (
    -- Registered migrations with statements 0.2.0 refuses (tenants that still need them would fail).
    SELECT 1 AS ord, 'refused statement'::text AS kind, format('migration %s_%s', m.version, m.name) AS subject,
           format('contains %s; see docs/migrations.md, "Statements a migration may not contain"', f.what) AS detail
    FROM tenancy.registered_migrations m
    CROSS JOIN LATERAL (VALUES
        ('COPY … FROM STDIN / TO STDOUT', '\mCOPY\M[^;]*\m(FROM\s+STDIN|TO\s+STDOUT)\M'),
        ('SET/RESET ROLE or SESSION AUTHORIZATION', '(^|;)\s*(SET|RESET)\s+(SESSION\s+|LOCAL\s+)?(ROLE|AUTHORIZATION)\M|\mSESSION\s+AUTHORIZATION\M'),
        ('a plain SET/RESET of search_path (use SET LOCAL)', '(^|;)\s*(SET\s+(SESSION\s+)?|RESET\s+)search_path\M'),
        ('DISCARD', '(^|;)\s*DISCARD\M'),
        ('LISTEN/UNLISTEN', '(^|;)\s*(UN)?LISTEN\M'),
        ('a temporary object', '\mCREATE\s+(GLOBAL\s+|LOCAL\s+)?TEMP(ORARY)?\M|\mINTO\s+TEMP(ORARY)?\M'),
        ('PREPARE/EXECUTE/DEALLOCATE', '(^|;)\s*(PREPARE\s+(?!TRANSACTION)|DEALLOCATE\M|EXECUTE\s+\w+\s*(\(|;|$))'),
        ('a cursor WITH HOLD', '\mWITH\s+HOLD\M')
    ) AS f(what, pattern)
    WHERE m.sql ~* f.pattern
    UNION ALL
    -- Registered migrations whose author lacks the privileges of a tenant's owner.
    SELECT 2, 'author lacks owner''s privileges', format('migration %s_%s', m.version, m.name),
           format('registered by %I, which does not have the privileges of %I, the owner of %s tenant(s) (e.g. %I); from 0.2.0 those tenants refuse it with 42501 if it is still pending for them',
                  m.added_by, r.rolname, count(*), min(t.schema_name))
    FROM tenancy.registered_migrations m
    CROSS JOIN tenancy.tenants t
    JOIN pg_catalog.pg_namespace n ON n.oid = t.schema_oid
    JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
    LEFT JOIN pg_catalog.pg_roles a ON a.rolname = m.added_by
    WHERE a.oid IS NULL OR NOT pg_catalog.pg_has_role(a.oid, r.oid, 'USAGE')
    GROUP BY m.version, m.name, m.added_by, r.rolname
    UNION ALL
    -- Tenants owned by a superuser: their migrations keep running as superuser.
    SELECT 3, 'superuser-owned tenant', t.schema_name::text,
           format('owned by superuser %I: its migrations run as superuser and only superusers may author them; consider ALTER SCHEMA %I OWNER TO <role>', r.rolname, t.schema_name)
    FROM tenancy.tenants t
    JOIN pg_catalog.pg_namespace n ON n.oid = t.schema_oid
    JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
    WHERE r.rolsuper
    UNION ALL
    -- Tenants with objects owned by someone else than the schema's owner (created by whoever ran a
    -- migration before 0.2.0). Later migrations run as the schema's owner and may fail on them.
    SELECT 4, 'mixed owners', t.schema_name::text,
           format('%s relation(s) not owned by the schema''s owner %I (e.g. %I owned by %I); after upgrading, tenancy.reconcile(dry_run => false, fix_owners => true) hands them over',
                  count(*), r.rolname, min(c.relname), min(o.rolname))
    FROM tenancy.tenants t
    JOIN pg_catalog.pg_namespace n ON n.oid = t.schema_oid
    JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relowner <> n.nspowner
                              AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    JOIN pg_catalog.pg_roles o ON o.oid = c.relowner
    GROUP BY t.schema_name, r.rolname
    UNION ALL
    -- Registered migrations whose text no longer matches its checksum (edited in the table).
    SELECT 5, 'text changed', format('migration %s_%s', m.version, m.name),
           'its text does not match its checksum: it was edited outside tenancy.add_migration; from 0.2.0 applying it fails (55000)'
    FROM tenancy.registered_migrations m
    WHERE pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(m.sql, 'UTF8')), 'hex') <> m.checksum
) AS findings
ORDER BY ord, subject;
