//! Projections of the node-agent events: join tokens, enrollment, node states, and the
//! instances the platform moves or the agents observe.

use sqlx::PgConnection;
use zeitwork_core::{Event, EventData};

use crate::StoreError;

/// Applies one node-agent event; [`super::apply`] sends only those here.
pub(super) async fn apply(db: &mut PgConnection, event: &Event) -> Result<(), StoreError> {
    let at = event.at;
    match &event.data {
        EventData::NodeJoinTokenCreated {
            token_id,
            hash,
            expires_at,
            replaces,
        } => {
            sqlx::query(
                "INSERT INTO join_tokens (id, hash, expires_at, created_at, replaces)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_id)
            .bind(hash)
            .bind(expires_at)
            .bind(at)
            .bind(replaces)
            .execute(db)
            .await?;
        }
        EventData::NodeEnrolled {
            node_id,
            name,
            region,
            zone,
            millicpus,
            memory_mb,
            addresses,
            instance_prefix,
            join_token_id,
            credential_hash,
            overlay,
        } => {
            sqlx::query("UPDATE join_tokens SET used_at = $2, used_by = $3 WHERE id = $1")
                .bind(join_token_id)
                .bind(at)
                .bind(node_id)
                .execute(&mut *db)
                .await?;
            sqlx::query(
                "INSERT INTO nodes (id, name, region, zone, millicpus, memory_mb, addresses, state,
                                    credential_hash, created_at, instance_prefix,
                                    wireguard_key, wireguard_port)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'ready', $8, $9, $10, $11, $12)
                 ON CONFLICT (id) DO UPDATE SET region = excluded.region, zone = excluded.zone,
                    millicpus = excluded.millicpus, memory_mb = excluded.memory_mb,
                    addresses = excluded.addresses, credential_hash = excluded.credential_hash,
                    instance_prefix = COALESCE(excluded.instance_prefix, nodes.instance_prefix),
                    wireguard_key = excluded.wireguard_key,
                    wireguard_port = excluded.wireguard_port",
            )
            .bind(node_id)
            .bind(name)
            .bind(region)
            .bind(zone)
            .bind(*millicpus as i32)
            .bind(*memory_mb as i64)
            .bind(serde_json::to_value(addresses).expect("strings serialize"))
            .bind(credential_hash)
            .bind(at)
            .bind(instance_prefix)
            .bind(overlay.as_ref().map(|o| &o.public_key))
            .bind(overlay.as_ref().map(|o| i32::from(o.port)))
            .execute(db)
            .await?;
        }
        EventData::NodeStateChanged { node_id, state } => {
            sqlx::query("UPDATE nodes SET state = $2 WHERE id = $1")
                .bind(node_id)
                .bind(state.as_str())
                .execute(db)
                .await?;
        }
        EventData::InstancesPlaced { instances, .. } => {
            for plan in instances {
                sqlx::query(
                    "UPDATE instances SET node_id = $2, region = $3, reason = $4, updated_at = $5
                     WHERE id = $1",
                )
                .bind(plan.instance_id)
                .bind(plan.node_id)
                .bind(&plan.region)
                .bind(&plan.reason)
                .bind(at)
                .execute(&mut *db)
                .await?;
            }
        }
        EventData::InstancesReplaced {
            replacements,
            restart,
            ..
        } => {
            for r in replacements {
                let plan = &r.instance;
                sqlx::query(
                    "INSERT INTO instances (id, org_id, env_id, deployment_id, process, node_id, region,
                                            desired_state, observed_state, reason, replaces,
                                            created_at, updated_at, secrets_seq)
                     SELECT $1, org_id, env_id, deployment_id, process, $3, $4, 'running', 'pending',
                            $5, id, $6, $6, CASE WHEN $7 THEN $8 ELSE secrets_seq END
                     FROM instances WHERE id = $2",
                )
                .bind(plan.instance_id)
                .bind(r.replaces)
                .bind(plan.node_id)
                .bind(&plan.region)
                .bind(&plan.reason)
                .bind(at)
                .bind(restart)
                .bind(event.seq)
                .execute(&mut *db)
                .await?;
            }
        }
        EventData::InstancesStopped {
            instance_ids,
            reason,
            ..
        } => {
            sqlx::query(
                "UPDATE instances SET desired_state = 'stopped', reason = $2, updated_at = $3
                 WHERE id = ANY($1)",
            )
            .bind(instance_ids)
            .bind(reason)
            .bind(at)
            .execute(db)
            .await?;
        }
        EventData::InstanceObserved {
            instance_id,
            state,
            reason,
            address,
            restarts,
        } => {
            sqlx::query(
                "UPDATE instances SET observed_state = $2, reason = $3, address = $4, restarts = $5,
                                      updated_at = $6
                 WHERE id = $1",
            )
            .bind(instance_id)
            .bind(state.as_str())
            .bind(reason)
            .bind(address)
            .bind(i32::try_from(*restarts).unwrap_or(i32::MAX))
            .bind(at)
            .execute(db)
            .await?;
        }
        other => unreachable!("{} is not a node-agent event", other.kind()),
    }
    Ok(())
}
