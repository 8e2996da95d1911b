-- The append-only log: the only source of truth. Everything below it is a projection.
CREATE TABLE events (
    seq     bigint PRIMARY KEY,
    at      timestamptz NOT NULL,
    org_id  uuid,
    kind    text NOT NULL,
    version integer NOT NULL,
    actor   text NOT NULL,
    payload jsonb NOT NULL
);
CREATE INDEX events_org_seq ON events (org_id, seq);

-- One row whose lock serializes appenders until they commit, so that sequence
-- order equals commit order and the sequence has no gaps (see ARCHITECTURE.md).
CREATE TABLE event_counter (
    id       integer PRIMARY KEY CHECK (id = 1),
    last_seq bigint NOT NULL
);
INSERT INTO event_counter VALUES (1, 0);

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the events table is append-only';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Where each consumer (listener, agent, edge) has read up to.
CREATE TABLE cursors (
    name text PRIMARY KEY,
    seq  bigint NOT NULL
);

-- Replays of create calls that carried an Idempotency-Key (bookkeeping, not a projection).
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status       integer NOT NULL,
    body         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Projections --------------------------------------------------------------

CREATE TABLE orgs (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CONSTRAINT orgs_name_unique UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE users (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    email      text NOT NULL,
    role       text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT users_email_unique UNIQUE (org_id, email)
);

CREATE TABLE tokens (
    id         uuid PRIMARY KEY,
    org_id     uuid REFERENCES orgs ON DELETE CASCADE,
    name       text NOT NULL,
    role       text NOT NULL,
    hash       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE apps (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT apps_name_unique UNIQUE (org_id, name)
);

CREATE TABLE envs (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    app_id     uuid NOT NULL REFERENCES apps ON DELETE CASCADE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT envs_name_unique UNIQUE (app_id, name)
);

CREATE TABLE regions (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CONSTRAINT regions_name_unique UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE nodes (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CONSTRAINT nodes_name_unique UNIQUE,
    region         text NOT NULL REFERENCES regions (name),
    zone           text,
    millicpus      integer NOT NULL,
    memory_mb      bigint NOT NULL,
    addresses      jsonb NOT NULL,
    state          text NOT NULL,
    last_heartbeat timestamptz,
    created_at     timestamptz NOT NULL
);

CREATE TABLE releases (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    app_id        uuid NOT NULL REFERENCES apps ON DELETE CASCADE,
    number        integer NOT NULL,
    image         text NOT NULL,
    digest        text NOT NULL,
    manifest      jsonb NOT NULL,
    manifest_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT releases_number_unique UNIQUE (app_id, number)
);

CREATE TABLE deployments (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    app_id      uuid NOT NULL REFERENCES apps ON DELETE CASCADE,
    env_id      uuid NOT NULL REFERENCES envs ON DELETE CASCADE,
    release_id  uuid NOT NULL REFERENCES releases ON DELETE CASCADE,
    slug        text NOT NULL CONSTRAINT deployments_slug_unique UNIQUE,
    state       text NOT NULL,
    rollback_of uuid,
    created_at  timestamptz NOT NULL
);
CREATE INDEX deployments_env ON deployments (env_id, created_at);

CREATE TABLE process_types (
    deployment_id uuid NOT NULL REFERENCES deployments ON DELETE CASCADE,
    name          text NOT NULL,
    instances     integer NOT NULL,
    millicpus     integer NOT NULL,
    memory_mb     bigint NOT NULL,
    port          integer,
    PRIMARY KEY (deployment_id, name)
);

CREATE TABLE instances (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    env_id         uuid NOT NULL REFERENCES envs ON DELETE CASCADE,
    deployment_id  uuid NOT NULL REFERENCES deployments ON DELETE CASCADE,
    process        text NOT NULL,
    node_id        uuid REFERENCES nodes,
    region         text,
    desired_state  text NOT NULL,
    observed_state text NOT NULL,
    reason         text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX instances_node ON instances (node_id);
CREATE INDEX instances_deployment ON instances (deployment_id);

CREATE TABLE routes (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    env_id         uuid NOT NULL REFERENCES envs ON DELETE CASCADE,
    host           text CONSTRAINT routes_host_unique UNIQUE,
    process        text NOT NULL,
    mode           text NOT NULL,
    port           integer NOT NULL,
    proxy_protocol boolean NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE TABLE domains (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    env_id             uuid NOT NULL REFERENCES envs ON DELETE CASCADE,
    hostname           text NOT NULL CONSTRAINT domains_hostname_unique UNIQUE,
    verification_token text NOT NULL,
    verified_at        timestamptz,
    created_at         timestamptz NOT NULL
);

CREATE TABLE secrets (
    org_id     uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    env_id     uuid NOT NULL REFERENCES envs ON DELETE CASCADE,
    name       text NOT NULL,
    version    integer NOT NULL,
    ciphertext text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (env_id, name)
);

CREATE TABLE builds (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    app_id     uuid NOT NULL REFERENCES apps ON DELETE CASCADE,
    state      text NOT NULL,
    source     text NOT NULL,
    release_id uuid REFERENCES releases ON DELETE SET NULL,
    created_at timestamptz NOT NULL
);
