-- Builds from source (events build_queued, build_state_changed): the env they deploy
-- to, the node that runs them, the manifest their image rolls out with, and how they
-- ended. The table existed unused; it has no rows to keep.
DELETE FROM builds;
ALTER TABLE builds
    ADD COLUMN env_id uuid NOT NULL REFERENCES envs ON DELETE CASCADE,
    ADD COLUMN node_id uuid NOT NULL REFERENCES nodes,
    ADD COLUMN manifest jsonb NOT NULL,
    ADD COLUMN reason text,
    ADD COLUMN image text,
    ADD COLUMN log jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN updated_at timestamptz NOT NULL;
CREATE INDEX builds_env ON builds (env_id, created_at DESC);
CREATE INDEX builds_node_open ON builds (node_id) WHERE state NOT IN ('succeeded', 'failed', 'cancelled');
