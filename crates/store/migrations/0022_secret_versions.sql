-- Every version of every secret (sealed, as in `secrets`), with the log positions that
-- set and replaced or unset it; and each instance's `secrets_seq`, the log position
-- whose secrets it runs with (events secret_set/secret_unset, deployment_created,
-- process_scaled, instances_replaced). An instance is told the versions current at its
-- `secrets_seq`, so one that started before a change never gets the newer value, not
-- even when it restarts; a restart (a replacement) gets the current ones.
CREATE TABLE secret_versions (
    org_id     uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    env_id     uuid NOT NULL REFERENCES envs ON DELETE CASCADE,
    name       text NOT NULL,
    version    integer NOT NULL,
    ciphertext text NOT NULL,
    set_seq    bigint NOT NULL,
    unset_seq  bigint,
    PRIMARY KEY (env_id, name, set_seq)
);
INSERT INTO secret_versions (org_id, env_id, name, version, ciphertext, set_seq)
SELECT s.org_id, s.env_id, s.name, s.version, s.ciphertext,
       COALESCE((SELECT max(e.seq) FROM events e
                 WHERE e.kind = 'secret_set' AND e.payload->>'env_id' = s.env_id::text
                   AND e.payload->>'name' = s.name), 0)
FROM secrets s;
-- Instances from before: NULL, the env's current secrets (as they were told until now).
ALTER TABLE instances ADD COLUMN secrets_seq bigint;
