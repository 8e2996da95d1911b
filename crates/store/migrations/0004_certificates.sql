-- TLS certificates for the edges, the ACME account they share, and open ACME challenges.

-- Projection of certificate_stored / certificate_removed: every certificate every edge
-- serves. Rows never change: a renewal or re-import is a new row that replaces the old
-- one (in the same event), so edges cache parsed keys by id and read only new rows.
CREATE TABLE certificates (
    id         uuid PRIMARY KEY,
    -- Lowercase DNS names from the certificate; `*.example.com` for a wildcard.
    hostnames  text[] NOT NULL,
    not_after  timestamptz NOT NULL,
    chain_pem  text NOT NULL,
    -- The private key (PEM) sealed with the platform key, bound to `id`: never plaintext.
    sealed_key text NOT NULL,
    -- `acme` certificates are renewed by the platform, `operator` ones by the operator.
    source     text NOT NULL CONSTRAINT certificates_source CHECK (source IN ('acme', 'operator')),
    created_at timestamptz NOT NULL
);
CREATE INDEX certificates_hostnames ON certificates USING gin (hostnames);

-- Projection of acme_account_stored: one account per ACME directory, for every edge.
CREATE TABLE acme_accounts (
    id                 uuid PRIMARY KEY,
    directory_url      text NOT NULL CONSTRAINT acme_accounts_directory_unique UNIQUE,
    -- instant-acme's credentials JSON, sealed with the platform key (bound to id + directory).
    sealed_credentials text NOT NULL,
    created_at         timestamptz NOT NULL
);

-- Bookkeeping, not a projection: the challenges of ACME orders in flight. They live for
-- the minute an order takes and are no history worth keeping (like heartbeats and log
-- lines), so they never reach the event log and rebuild-projections leaves them alone.
-- The issuer writes a row, then publishes `zw.v1.certificates` so every edge re-reads
-- this table at once (edges without NATS pick it up on their resync timer), and deletes
-- the row when the order is done. `expires_at` bounds rows an issuer died holding.
-- A key authorization is no secret: the CA's validator fetches it over plain HTTP.
CREATE TABLE acme_challenges (
    token             text PRIMARY KEY,
    hostname          text NOT NULL,
    kind              text NOT NULL CONSTRAINT acme_challenges_kind CHECK (kind IN ('http-01', 'tls-alpn-01')),
    key_authorization text NOT NULL,
    expires_at        timestamptz NOT NULL
);
CREATE INDEX acme_challenges_expires ON acme_challenges (expires_at);
