-- Instance console lines, shipped by node agents. Bookkeeping, not a projection: never
-- in the event log and untouched by rebuild-projections. Hence no foreign keys either:
-- the rebuild's `TRUNCATE … CASCADE` of the projections would follow them and empty
-- this table. Old lines go by age and by count per instance (logs::prune).
--
-- `id` order is commit order: appenders hold an advisory lock from before they take
-- ids until they commit (see logs.rs), so a follower tailing `id > cursor` never skips
-- a line that commits late. Rolled-back appends leave gaps, which followers ignore.
CREATE TABLE log_lines (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id uuid NOT NULL,
    org_id      uuid NOT NULL,
    app_id      uuid NOT NULL,
    env_id      uuid NOT NULL,
    -- Copied from the instance so a line reads whole without a join.
    process     text NOT NULL,
    at          timestamptz NOT NULL,
    line        text NOT NULL
);
CREATE INDEX log_lines_app ON log_lines (app_id, id);
CREATE INDEX log_lines_env ON log_lines (env_id, id);
CREATE INDEX log_lines_instance ON log_lines (instance_id, id);
CREATE INDEX log_lines_at ON log_lines (at);
