-- The tenant's subscription points at the application's shared plan catalogue (public.plans),
-- and a helper function reads this tenant's own tables through @tenant@, so it keeps working
-- whatever search_path its caller has.
CREATE TABLE subscription (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    plan_id     bigint NOT NULL REFERENCES public.plans (id),
    started_on  date NOT NULL DEFAULT current_date
);

CREATE FUNCTION open_task_count(p_project bigint) RETURNS bigint
    LANGUAGE sql STABLE
    AS $$
        SELECT count(*) FROM @tenant@.tasks
        WHERE project_id = p_project AND done_at IS NULL
    $$;
