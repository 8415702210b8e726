-- Tasks of a project; the assignee is a user of the same tenant.
CREATE TABLE tasks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    assignee_id  bigint REFERENCES users (id) ON DELETE SET NULL,
    title        text NOT NULL,
    due_on       date,
    done_at      timestamptz
);
CREATE INDEX tasks_project_idx ON tasks (project_id);
CREATE INDEX tasks_open_idx ON tasks (assignee_id) WHERE done_at IS NULL;
