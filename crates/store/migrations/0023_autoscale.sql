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
    -- "ip:port" of each instance the edge routes to → its mean requests in flight
    -- since the edge's previous report.
    in_flight   jsonb NOT NULL
);
CREATE UNLOGGED TABLE instance_cpu (
    instance_id uuid PRIMARY KEY,
    reported_at timestamptz NOT NULL,
    -- The VMM's mean CPU use since its agent's previous heartbeat, in thousandths of
    -- a core.
    millicpus   integer NOT NULL CHECK (millicpus >= 0)
);
