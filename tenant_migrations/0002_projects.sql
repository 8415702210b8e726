-- Projects belong to the tenant and are owned by one of its users.
CREATE TABLE projects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    owner_id    bigint NOT NULL REFERENCES users (id),
    archived    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_name_not_blank CHECK (btrim(name) <> '')
);
CREATE INDEX projects_owner_idx ON projects (owner_id);
