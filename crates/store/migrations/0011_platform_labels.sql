-- Platform hostnames (<label>.<base domain>; labels built by zeitwork_core::platform_host)
-- belong to exactly one env or deployment. Names may contain '-', so two tenants could
-- otherwise be given the same label; the operator refuses a label that is taken.
CREATE TABLE platform_labels (
    label         text CONSTRAINT platform_labels_label_unique PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs ON DELETE CASCADE,
    env_id        uuid NOT NULL REFERENCES envs ON DELETE CASCADE,
    deployment_id uuid REFERENCES deployments ON DELETE CASCADE
);
CREATE INDEX platform_labels_env ON platform_labels (env_id);

-- The labels of what exists, first holder first (the scheme as of this migration).
INSERT INTO platform_labels (label, org_id, env_id, deployment_id)
SELECT label, org_id, env_id, deployment_id FROM (
    SELECT CASE e.name WHEN 'prod' THEN a.name || '-' || o.name
                       ELSE a.name || '-' || e.name || '-' || o.name END AS label,
           e.org_id, e.id AS env_id, NULL::uuid AS deployment_id, e.created_at
    FROM envs e JOIN apps a ON a.id = e.app_id JOIN orgs o ON o.id = e.org_id
    UNION ALL
    SELECT a.name || '-' || d.slug || '-' || o.name, d.org_id, d.env_id, d.id, d.created_at
    FROM deployments d JOIN apps a ON a.id = d.app_id JOIN orgs o ON o.id = d.org_id
    ORDER BY created_at
) AS held
ON CONFLICT DO NOTHING;

-- Custom domains: any number of envs may claim a hostname while unverified (a claim
-- cannot block the real owner), one env per hostname once verified.
ALTER TABLE domains DROP CONSTRAINT domains_hostname_unique;
ALTER TABLE domains ADD CONSTRAINT domains_env_hostname_unique UNIQUE (env_id, hostname);
CREATE UNIQUE INDEX domains_hostname_verified ON domains (hostname) WHERE verified_at IS NOT NULL;
