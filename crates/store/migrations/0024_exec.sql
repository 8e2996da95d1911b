-- Exec grants (docs/architecture.md, "Exec"): events exec_granted and exec_started.
-- Only the SHA-256 of a grant's secret is kept; a grant is used once (started_at).
CREATE TABLE exec_grants (
    id          uuid PRIMARY KEY,
    org_id      uuid,
    instance_id uuid NOT NULL,
    node_id     uuid NOT NULL,
    command     jsonb NOT NULL,
    tty         boolean NOT NULL,
    term        text,
    hash        text NOT NULL,
    granted_by  text NOT NULL,
    granted_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    started_at  timestamptz
);
CREATE INDEX exec_grants_started ON exec_grants (node_id, started_at)
    WHERE started_at IS NOT NULL;
