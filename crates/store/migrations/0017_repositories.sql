-- Apps connected to a git repository (events repository_connected/_disconnected), the
-- webhook deliveries handled (webhook_delivered: each delivery id once), preview envs
-- (env_created.preview_of: the branch they preview) and builds of a pushed commit
-- (build_queued.git).
CREATE TABLE app_repositories (
    app_id        uuid PRIMARY KEY REFERENCES apps ON DELETE CASCADE,
    hook_id       uuid NOT NULL UNIQUE,
    url           text NOT NULL,
    branch        text NOT NULL,
    sealed_secret text NOT NULL,
    sealed_token  text,
    connected_at  timestamptz NOT NULL
);
CREATE TABLE webhook_deliveries (
    delivery     text PRIMARY KEY,
    app_id       uuid NOT NULL REFERENCES apps ON DELETE CASCADE,
    event        text NOT NULL,
    outcome      text NOT NULL,
    delivered_at timestamptz NOT NULL
);
ALTER TABLE envs ADD COLUMN preview_of text;
CREATE UNIQUE INDEX envs_preview ON envs (app_id, preview_of);
ALTER TABLE builds ADD COLUMN git jsonb;
