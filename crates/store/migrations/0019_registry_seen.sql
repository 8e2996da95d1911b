-- Registry garbage collection's memory: when the collector first saw each image
-- (repository, manifest digest) in the platform registry, so an image is deleted only
-- once it has gone unreferenced for a grace period (an image pushed a moment ago and not
-- deployed yet is never collected). Bookkeeping, not a projection.
CREATE TABLE registry_seen (
    repository text NOT NULL,
    digest     text NOT NULL,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (repository, digest)
);

-- Blob sweeps (`docker-registry garbage-collect`): while one is open, the token service
-- grants pulls only, so no upload can be in flight while the sweep decides what is
-- unreferenced. One left open by a crash stops counting after an hour.
CREATE TABLE registry_sweeps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
