-- Events this build cannot decode (written by a newer or a broken build). Readers skip
-- them instead of stalling, and record each here once, so an operator sees what was
-- skipped (`zeitwork_events_quarantined_total`, the operator's log) and can repair it.
-- `seq` names an event without a foreign key: a reference would make the append-only
-- log's TRUNCATE guard answer with a foreign-key error instead of its own.
CREATE TABLE quarantined_events (
    seq      bigint PRIMARY KEY,
    kind     text NOT NULL,
    error    text NOT NULL,
    found_at timestamptz NOT NULL DEFAULT now()
);
