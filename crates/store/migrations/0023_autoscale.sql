-- Autoscaling (docs/architecture.md, "Autoscaling").
-- The last change of each process's count: when, by whom, and the autoscaler's reason
-- (event process_scaled).
ALTER TABLE process_types
    ADD COLUMN scaled_at     timestamptz,
    ADD COLUMN scaled_by     text,
    ADD COLUMN scaled_reason text;

-- Load reports are measurements, not history: neither in the event log nor projections
-- (rebuild-projections leaves them alone). UNLOGGED: a crash of Postgres may empty them,
-- and the autoscaler then holds every count until fresh reports arrive. Times are the
-- database's, so the reporters' clocks do not matter.
CREATE UNLOGGED TABLE edge_load (
    edge        text PRIMARY KEY,
    reported_at timestamptz NOT NULL,
    -- "ip:port" of each instance the edge routes to → {"in_flight": mean requests in
    -- flight, "requests": requests sent} since the edge's previous report.
    load        jsonb NOT NULL
);
CREATE UNLOGGED TABLE instance_cpu (
    instance_id uuid PRIMARY KEY,
    reported_at timestamptz NOT NULL,
    -- The VMM's mean CPU use since its agent's previous heartbeat, in thousandths of
    -- a core.
    millicpus   integer NOT NULL CHECK (millicpus >= 0),
    -- The app inside says it works in the background: a process scaled to zero is not
    -- idle while one of its instances is busy.
    busy        boolean NOT NULL
);

-- Requests an edge holds for a process scaled to zero (`min = 0`): the autoscaler starts
-- an instance for them. One row per process, however many requests wait.
CREATE UNLOGGED TABLE wake_requests (
    deployment_id uuid NOT NULL,
    process       text NOT NULL,
    requested_at  timestamptz NOT NULL,
    PRIMARY KEY (deployment_id, process)
);
