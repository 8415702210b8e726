-- subscription.plan_id references public.plans through pg_tenancy's shared reference instead of
-- 0005's native foreign key, where public.plans is shared (tenancy.share_table, run once by its
-- owner): a native foreign key puts two triggers per tenant on public.plans, which slows down
-- provisioning, every connection's next query on it and deleting its rows as tenants are added
-- (issue 15). tenancy.reference_shared drops the native foreign key it replaces and checks the
-- rows already there.
--
-- Where public.plans is not shared (share_table not run, or on Citus, where shared tables are
-- reference tables and keep native foreign keys) this changes nothing and the native foreign key
-- stays; tenancy.verify() reports it with the fix. A tenant that passed this migration before
-- share_table ran is converted by the same text registered under a later version
-- (docs/functions/reference_shared.md, "Converting existing tenants"): nothing is converted
-- without someone asking for it.
-- (Nested IFs: PL/pgSQL plans a condition as one query, so the registry is named only once it
-- is known to exist, as between a package upgrade and ALTER EXTENSION UPDATE it does not.)
DO $do$
BEGIN
    IF pg_catalog.to_regclass('tenancy.shared_tables') IS NOT NULL
       AND pg_catalog.to_regclass('@tenant@.subscription') IS NOT NULL
       AND pg_catalog.to_regclass('public.plans') IS NOT NULL THEN
        IF EXISTS (SELECT FROM tenancy.shared_tables s
                   WHERE s.table_name OPERATOR(pg_catalog.=) pg_catalog.to_regclass('public.plans'))
           AND NOT EXISTS (SELECT FROM tenancy.shared_references r
                           WHERE r.referencing OPERATOR(pg_catalog.=) pg_catalog.to_regclass('@tenant@.subscription')
                             AND r.shared OPERATOR(pg_catalog.=) pg_catalog.to_regclass('public.plans')) THEN
            PERFORM tenancy.reference_shared('@tenant@.subscription', ARRAY['plan_id'], 'public.plans');
        END IF;
    END IF;
END
$do$;
