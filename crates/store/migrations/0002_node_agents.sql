-- Node agents: join tokens, node credentials, liveness, and what agents report.

-- Projection of node_join_token_created / node_enrolled. Only hashes are stored.
CREATE TABLE join_tokens (
    id         uuid PRIMARY KEY,
    hash       text NOT NULL CONSTRAINT join_tokens_hash_unique UNIQUE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    used_by    uuid,
    created_at timestamptz NOT NULL
);

-- The SHA-256 of the node's current credential (node_enrolled); NULL for nodes
-- registered by hand, which have no agent.
ALTER TABLE nodes ADD COLUMN credential_hash text CONSTRAINT nodes_credential_unique UNIQUE;

-- Liveness is not history: heartbeats never reach the event log, so they live in a
-- bookkeeping table (below) that rebuild-projections leaves alone.
ALTER TABLE nodes DROP COLUMN last_heartbeat;

-- What the node's agent last reported (instance_observed), and whose place a
-- replacement takes (instances_replaced).
ALTER TABLE instances
    ADD COLUMN address  text,
    ADD COLUMN restarts integer NOT NULL DEFAULT 0,
    ADD COLUMN replaces uuid;
CREATE INDEX instances_replaces ON instances (replaces) WHERE replaces IS NOT NULL;
-- The monitor looks for these every second.
CREATE INDEX instances_waiting ON instances (created_at)
    WHERE node_id IS NULL AND desired_state = 'running';

-- Bookkeeping, not a projection: the last heartbeat of each node that has an agent.
-- No foreign key, because rebuild-projections' `TRUNCATE nodes CASCADE` would follow
-- it and forget every node's liveness. Nodes without a row here are never judged dead.
CREATE TABLE node_heartbeats (
    node_id uuid PRIMARY KEY,
    at      timestamptz NOT NULL,
    -- Instances the agent said it runs.
    running integer NOT NULL
);
