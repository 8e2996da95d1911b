-- Registry storage per org: its quota (org_quotas.registry_mb, event org_quotas_set) and
-- what the registry's garbage collection last measured (bookkeeping, not a projection:
-- no foreign key, so rebuilding the projections leaves it alone, as with log_lines).
ALTER TABLE org_quotas ADD COLUMN registry_mb bigint CHECK (registry_mb >= 0);
CREATE TABLE registry_usage (
    org_id      uuid PRIMARY KEY,
    bytes       bigint NOT NULL CHECK (bytes >= 0),
    measured_at timestamptz NOT NULL
);
