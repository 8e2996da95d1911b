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
