-- Warm standby: the deployment a rollout replaces may keep its instances running,
-- unrouted, until standby_until, so a rollback to it boots nothing (events
-- deployment_created.standby, deployment_reactivated, standby_ended). activated_at is
-- when a deployment last became active (its creation, or a rollback to it): the edges
-- serve an env's hostnames from the newest activated deployment with healthy instances.
ALTER TABLE deployments ADD COLUMN activated_at timestamptz;
UPDATE deployments SET activated_at = created_at;
ALTER TABLE deployments ALTER COLUMN activated_at SET NOT NULL;
ALTER TABLE deployments ADD COLUMN standby_until timestamptz;
ALTER TABLE deployments ADD CONSTRAINT deployments_state
    CHECK (state IN ('active', 'standby', 'superseded'));
ALTER TABLE deployments ADD CONSTRAINT deployments_standby_until
    CHECK ((state = 'standby') = (standby_until IS NOT NULL));
CREATE UNIQUE INDEX deployments_one_active ON deployments (env_id) WHERE state = 'active';
CREATE UNIQUE INDEX deployments_one_standby ON deployments (env_id) WHERE state = 'standby';
