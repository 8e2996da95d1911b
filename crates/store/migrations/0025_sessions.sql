-- Dashboard sessions (docs/architecture.md, "Dashboard"): an API token exchanged for a
-- cookie. Not a projection: sign-ins are not events, and a session dies with its token
-- (sessions join tokens on every use). Only the SHA-256 of the cookie's secret is kept.
CREATE TABLE sessions (
    hash       text PRIMARY KEY,
    token_id   uuid NOT NULL,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
