-- One org's own quotas where a platform admin set them (event org_quotas_set); NULL is
-- the platform's quota (the operator's --quota-* flags). No row: all the platform's.
CREATE TABLE org_quotas (
    org_id     uuid PRIMARY KEY REFERENCES orgs ON DELETE CASCADE,
    instances  bigint CHECK (instances >= 0),
    memory_mb  bigint CHECK (memory_mb >= 0),
    routes     bigint CHECK (routes >= 0),
    tcp_routes bigint CHECK (tcp_routes >= 0),
    domains    bigint CHECK (domains >= 0),
    updated_at timestamptz NOT NULL
);
