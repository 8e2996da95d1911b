//! The projections: a pure function of the event sequence. Nothing else writes to
//! these tables, which is what makes `rebuild-projections` exact.

mod agents;
mod certificates;
mod deployments;
mod execs;
mod labels;
mod secrets;

use sqlx::AssertSqlSafe;
use sqlx::PgConnection;
use zeitwork_core::event::{InstancePlan, ProcessSpec};
use zeitwork_core::{Event, EventData};

use crate::StoreError;

/// Applies one committed (or replayed) event to the projection tables.
pub async fn apply(db: &mut PgConnection, event: &Event) -> Result<(), StoreError> {
    let at = event.at;
    let org = event.org_id;
    match &event.data {
        EventData::OrgCreated { org_id, name } => {
            sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(org_id)
                .bind(name)
                .bind(at)
                .execute(db)
                .await?;
        }
        EventData::OrgDeleted { org_id } => delete(db, "orgs", org_id).await?,
        EventData::BuildQueued {
            build_id,
            env_id,
            source,
            manifest,
            node_id,
            git,
        } => {
            sqlx::query(
                "INSERT INTO builds (id, org_id, app_id, env_id, node_id, state, source, manifest, git, created_at, updated_at)
                 SELECT $1, a.org_id, a.id, e.id, $3, 'queued', $4, $5, $7, $6, $6
                 FROM envs e JOIN apps a ON a.id = e.app_id WHERE e.id = $2",
            )
            .bind(build_id)
            .bind(env_id)
            .bind(node_id)
            .bind(source)
            .bind(manifest)
            .bind(at)
            .bind(git.as_ref().map(sqlx::types::Json))
            .execute(db)
            .await?;
        }
        EventData::BuildStateChanged {
            build_id,
            state,
            reason,
            image,
            log,
            manifest,
        } => {
            sqlx::query(
                "UPDATE builds SET state = $2, reason = $3, image = $4, log = $5, updated_at = $6,
                     manifest = COALESCE($7, manifest) WHERE id = $1",
            )
            .bind(build_id)
            .bind(state.as_str())
            .bind(reason)
            .bind(image)
            .bind(serde_json::to_value(log).expect("lines serialize"))
            .bind(at)
            .bind(manifest)
            .execute(db)
            .await?;
        }
        EventData::RepositoryConnected {
            app_id,
            hook_id,
            url,
            branch,
            sealed_secret,
            sealed_token,
        } => {
            sqlx::query(
                "INSERT INTO app_repositories (app_id, hook_id, url, branch, sealed_secret, sealed_token, connected_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (app_id) DO UPDATE SET hook_id = $2, url = $3, branch = $4,
                     sealed_secret = $5, sealed_token = $6, connected_at = $7",
            )
            .bind(app_id)
            .bind(hook_id)
            .bind(url)
            .bind(branch)
            .bind(sealed_secret)
            .bind(sealed_token)
            .bind(at)
            .execute(db)
            .await?;
        }
        EventData::RepositoryDisconnected { app_id } => {
            sqlx::query("DELETE FROM app_repositories WHERE app_id = $1")
                .bind(app_id)
                .execute(db)
                .await?;
        }
        EventData::WebhookDelivered {
            app_id,
            delivery,
            event,
            outcome,
        } => {
            sqlx::query(
                "INSERT INTO webhook_deliveries (delivery, app_id, event, outcome, delivered_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(delivery)
            .bind(app_id)
            .bind(event)
            .bind(outcome)
            .bind(at)
            .execute(db)
            .await?;
        }
        EventData::OrgQuotasSet { org_id, quotas } => {
            // Bounded by `Quotas::MAX` where they enter, so each fits a bigint.
            let n = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
            sqlx::query(
                "INSERT INTO org_quotas (org_id, instances, memory_mb, routes, tcp_routes, domains, updated_at, registry_mb)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (org_id) DO UPDATE SET instances = $2, memory_mb = $3, routes = $4,
                     tcp_routes = $5, domains = $6, updated_at = $7, registry_mb = $8",
            )
            .bind(org_id)
            .bind(n(quotas.instances))
            .bind(n(quotas.memory_mb))
            .bind(n(quotas.routes))
            .bind(n(quotas.tcp_routes))
            .bind(n(quotas.domains))
            .bind(at)
            .bind(n(quotas.registry_mb))
            .execute(db)
            .await?;
        }
        EventData::UserAdded {
            user_id,
            org_id,
            email,
            role,
        } => {
            sqlx::query("INSERT INTO users (id, org_id, email, role, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(user_id)
                .bind(org_id)
                .bind(email)
                .bind(role)
                .bind(at)
                .execute(db)
                .await?;
        }
        EventData::UserRemoved { user_id } => delete(db, "users", user_id).await?,
        EventData::TokenCreated {
            token_id,
            org_id,
            name,
            role,
            hash,
        } => {
            sqlx::query(
                "INSERT INTO tokens (id, org_id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token_id)
            .bind(org_id)
            .bind(name)
            .bind(role)
            .bind(hash)
            .bind(at)
            .execute(db)
            .await?;
        }
        EventData::TokenRevoked { token_id } => delete(db, "tokens", token_id).await?,
        EventData::AppCreated {
            app_id,
            org_id,
            name,
        } => {
            sqlx::query("INSERT INTO apps (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(app_id)
                .bind(org_id)
                .bind(name)
                .bind(at)
                .execute(db)
                .await?;
        }
        EventData::AppDeleted { app_id } => delete(db, "apps", app_id).await?,
        EventData::EnvCreated {
            env_id,
            app_id,
            name,
            preview_of,
        } => {
            sqlx::query("INSERT INTO envs (id, org_id, app_id, name, preview_of, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(env_id)
                .bind(org)
                .bind(app_id)
                .bind(name)
                .bind(preview_of)
                .bind(at)
                .execute(&mut *db)
                .await?;
            labels::claim(db, env_id, None).await?;
        }
        EventData::EnvDeleted { env_id } => delete(db, "envs", env_id).await?,
        EventData::RouteCreated {
            route_id,
            env_id,
            host,
            process,
            mode,
            port,
            proxy_protocol,
            policy,
            listen_port,
            declared,
        } => {
            sqlx::query(
                "INSERT INTO routes (id, org_id, env_id, host, process, mode, port, proxy_protocol, policy, listen_port, declared, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(route_id)
            .bind(org)
            .bind(env_id)
            .bind(host)
            .bind(process)
            .bind(mode)
            .bind(i32::from(*port))
            .bind(proxy_protocol)
            .bind(sqlx::types::Json(policy))
            .bind(listen_port.map(i32::from))
            .bind(declared)
            .bind(at)
            .execute(db)
            .await?;
        }
        EventData::RouteDeleted { route_id } => delete(db, "routes", route_id).await?,
        EventData::DomainAdded {
            domain_id,
            env_id,
            hostname,
            verification_token,
        } => {
            sqlx::query(
                "INSERT INTO domains (id, org_id, env_id, hostname, verification_token, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(domain_id)
            .bind(org)
            .bind(env_id)
            .bind(hostname)
            .bind(verification_token)
            .bind(at)
            .execute(db)
            .await?;
        }
        EventData::DomainRemoved { domain_id } => delete(db, "domains", domain_id).await?,
        // The first verification counts: a duplicate (two verifies racing) changes nothing,
        // live or replayed.
        EventData::DomainVerified { domain_id } => {
            sqlx::query(
                "UPDATE domains SET verified_at = $2 WHERE id = $1 AND verified_at IS NULL",
            )
            .bind(domain_id)
            .bind(at)
            .execute(db)
            .await?;
        }
        EventData::SecretSet {
            env_id,
            name,
            version,
            ciphertext,
        } => {
            sqlx::query(
                "INSERT INTO secrets (org_id, env_id, name, version, ciphertext, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (env_id, name) DO UPDATE
                 SET version = excluded.version, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            )
            .bind(org)
            .bind(env_id)
            .bind(name)
            .bind(version)
            .bind(ciphertext)
            .bind(at)
            .execute(&mut *db)
            .await?;
            secrets::replace(db, event.seq, env_id, name).await?;
            secrets::add(db, org, event.seq, env_id, name, *version, ciphertext).await?;
        }
        EventData::SecretUnset { env_id, name } => {
            sqlx::query("DELETE FROM secrets WHERE env_id = $1 AND name = $2")
                .bind(env_id)
                .bind(name)
                .execute(&mut *db)
                .await?;
            secrets::replace(db, event.seq, env_id, name).await?;
        }
        EventData::RegionCreated { region_id, name } => {
            sqlx::query("INSERT INTO regions (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(region_id)
                .bind(name)
                .bind(at)
                .execute(db)
                .await?;
        }
        EventData::RegionAddressesSet {
            region_id,
            addresses,
            client_networks,
        } => {
            sqlx::query("UPDATE regions SET addresses = $2, client_networks = $3 WHERE id = $1")
                .bind(region_id)
                .bind(addresses)
                .bind(client_networks)
                .execute(db)
                .await?;
        }
        EventData::NodeRegistered {
            node_id,
            name,
            region,
            zone,
            millicpus,
            memory_mb,
            addresses,
            instance_prefix,
        } => {
            sqlx::query(
                "INSERT INTO nodes (id, name, region, zone, millicpus, memory_mb, addresses, state,
                                    created_at, instance_prefix)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'ready', $8, $9)",
            )
            .bind(node_id)
            .bind(name)
            .bind(region)
            .bind(zone)
            .bind(*millicpus as i32)
            .bind(*memory_mb as i64)
            .bind(serde_json::to_value(addresses).expect("strings serialize"))
            .bind(at)
            .bind(instance_prefix)
            .execute(db)
            .await?;
        }
        EventData::ReleaseCreated {
            release_id,
            app_id,
            number,
            image,
            digest,
            manifest,
            manifest_hash,
        } => {
            sqlx::query(
                "INSERT INTO releases (id, org_id, app_id, number, image, digest, manifest, manifest_hash, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(release_id)
            .bind(org)
            .bind(app_id)
            .bind(number)
            .bind(image)
            .bind(digest)
            .bind(manifest)
            .bind(manifest_hash)
            .bind(at)
            .bind(&event.actor)
            .execute(db)
            .await?;
        }
        EventData::DeploymentCreated {
            deployment_id,
            env_id,
            release_id,
            slug,
            rollback_of,
            processes,
            instances,
            surge,
            standby,
        } => {
            // A surge keeps the earlier instances that run somewhere (they serve until
            // this deployment's are healthy); those still waiting for room are not needed.
            sqlx::query(
                "UPDATE instances SET desired_state = 'stopped', updated_at = $2
                 WHERE env_id = $1 AND desired_state <> 'stopped' AND (NOT $3 OR node_id IS NULL)",
            )
            .bind(env_id)
            .bind(at)
            .bind(surge)
            .execute(&mut *db)
            .await?;
            deployments::demote_active(db, env_id, at, *standby).await?;
            sqlx::query(
                "INSERT INTO deployments (id, org_id, app_id, env_id, release_id, slug, state, rollback_of, created_at, activated_at)
                 SELECT $1, $2, app_id, $3, $4, $5, 'active', $6, $7, $7 FROM envs WHERE id = $3",
            )
            .bind(deployment_id)
            .bind(org)
            .bind(env_id)
            .bind(release_id)
            .bind(slug)
            .bind(rollback_of)
            .bind(at)
            .execute(&mut *db)
            .await?;
            labels::claim(db, env_id, Some((deployment_id, slug))).await?;
            for p in processes {
                insert_process(db, deployment_id, p).await?;
            }
            insert_instances(db, event, deployment_id, instances).await?;
        }
        EventData::DeploymentReactivated {
            deployment_id,
            env_id,
            rollback_of,
            standby,
        } => {
            deployments::reactivate(db, env_id, deployment_id, rollback_of, at, *standby).await?;
        }
        EventData::StandbyEnded {
            deployment_id,
            env_id,
            reason: _,
        } => {
            deployments::supersede_standby(db, env_id, Some(deployment_id)).await?;
        }
        EventData::ProcessScaled {
            deployment_id,
            process,
            instances,
            started,
            stopped,
            reason,
        } => {
            sqlx::query(
                "UPDATE process_types
                 SET instances = $3, scaled_at = $4, scaled_by = $5, scaled_reason = $6
                 WHERE deployment_id = $1 AND name = $2",
            )
            .bind(deployment_id)
            .bind(process)
            .bind(*instances as i32)
            .bind(at)
            .bind(&event.actor)
            .bind(reason)
            .execute(&mut *db)
            .await?;
            sqlx::query("UPDATE instances SET desired_state = 'stopped', updated_at = $2 WHERE id = ANY($1)")
                .bind(stopped)
                .bind(at)
                .execute(&mut *db)
                .await?;
            insert_instances(db, event, deployment_id, started).await?;
        }
        EventData::NodeJoinTokenCreated { .. }
        | EventData::NodeEnrolled { .. }
        | EventData::NodeStateChanged { .. }
        | EventData::InstancesPlaced { .. }
        | EventData::InstancesReplaced { .. }
        | EventData::InstancesStopped { .. }
        | EventData::InstanceObserved { .. } => agents::apply(db, event).await?,
        EventData::CertificateStored { .. }
        | EventData::CertificateRemoved { .. }
        | EventData::AcmeAccountStored { .. } => certificates::apply(db, event).await?,
        EventData::ExecGranted { .. } | EventData::ExecStarted { .. } => {
            execs::apply(db, event).await?
        }
    }
    Ok(())
}

async fn delete(
    db: &mut PgConnection,
    table: &'static str,
    id: &uuid::Uuid,
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE id = $1")))
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

async fn insert_process(
    db: &mut PgConnection,
    deployment: &uuid::Uuid,
    p: &ProcessSpec,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO process_types (deployment_id, name, instances, millicpus, memory_mb, port)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(deployment)
    .bind(&p.name)
    .bind(p.instances as i32)
    .bind(p.millicpus as i32)
    .bind(p.memory_mb as i64)
    .bind(p.port.map(i32::from))
    .execute(db)
    .await?;
    Ok(())
}

async fn insert_instances(
    db: &mut PgConnection,
    event: &Event,
    deployment: &uuid::Uuid,
    plans: &[InstancePlan],
) -> Result<(), StoreError> {
    for plan in plans {
        sqlx::query(
            "INSERT INTO instances (id, org_id, env_id, deployment_id, process, node_id, region,
                                    desired_state, observed_state, reason, created_at, updated_at,
                                    secrets_seq)
             SELECT $1, org_id, env_id, id, $3, $4, $5, 'running', 'pending', $6, $7, $7, $8
             FROM deployments WHERE id = $2",
        )
        .bind(plan.instance_id)
        .bind(deployment)
        .bind(&plan.process)
        .bind(plan.node_id)
        .bind(&plan.region)
        .bind(&plan.reason)
        .bind(event.at)
        .bind(event.seq)
        .execute(&mut *db)
        .await?;
    }
    Ok(())
}
