//! Which subjects hear about an event. Agents subscribe to their node's subject (and the
//! broadcast one), edges to routes and certificates; `zw.v1.events` carries everything,
//! for tools.

use std::collections::BTreeSet;

use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;
use zeitwork_bus::PREFIX;
use zeitwork_core::{Event, EventData};

use crate::ListenerError;

pub async fn subjects(
    conn: &mut PgConnection,
    event: &Event,
) -> Result<Vec<String>, ListenerError> {
    let mut out = vec![format!("{PREFIX}.events")];
    match &event.data {
        EventData::DeploymentCreated { env_id, .. } => {
            // The new instances' nodes and those of the instances told to stop.
            let nodes = nodes_of(conn, Holder::Env(*env_id)).await?;
            out.extend(node_subjects(nodes));
            out.push(format!("{PREFIX}.routes"));
        }
        EventData::ProcessScaled { deployment_id, .. } => {
            let nodes = nodes_of(conn, Holder::Deployment(*deployment_id)).await?;
            out.extend(node_subjects(nodes));
            out.push(format!("{PREFIX}.routes"));
        }
        // Their instances are gone from the projections already: tell every agent.
        EventData::OrgDeleted { .. }
        | EventData::AppDeleted { .. }
        | EventData::EnvDeleted { .. } => {
            out.push(format!("{PREFIX}.instances"));
            out.push(format!("{PREFIX}.routes"));
        }
        // Edges switch the env's hostnames back; no instance starts or stops.
        EventData::DeploymentReactivated { .. } => out.push(format!("{PREFIX}.routes")),
        // Edges serve verified domains only and the certificate issuer orders for them:
        // both follow `routes`, so a verification wakes them like any domain change.
        EventData::RouteCreated { .. }
        | EventData::RouteDeleted { .. }
        | EventData::DomainAdded { .. }
        | EventData::DomainRemoved { .. }
        | EventData::DomainVerified { .. } => out.push(format!("{PREFIX}.routes")),
        EventData::SecretSet { .. } | EventData::SecretUnset { .. } => {
            out.push(format!("{PREFIX}.secrets"))
        }
        EventData::NodeRegistered { .. }
        | EventData::NodeEnrolled { .. }
        | EventData::NodeStateChanged { .. }
        | EventData::RegionCreated { .. } => out.push(format!("{PREFIX}.nodes")),
        // DNS servers answer from regions' public addresses.
        EventData::RegionAddressesSet { .. } => out.push(format!("{PREFIX}.regions")),
        // Nodes gaining instances: named in the payload.
        EventData::InstancesPlaced { instances, .. } => {
            out.extend(node_subjects(instances.iter().filter_map(|p| p.node_id)));
        }
        EventData::InstancesReplaced { replacements, .. } => {
            let gaining = replacements.iter().filter_map(|r| r.instance.node_id);
            out.extend(node_subjects(gaining));
        }
        // Nodes losing instances, and edges losing backends.
        EventData::InstancesStopped { instance_ids, .. } => {
            let nodes = nodes_of(conn, Holder::Instances(instance_ids)).await?;
            out.extend(node_subjects(nodes));
            out.push(format!("{PREFIX}.routes"));
        }
        // The node that runs the build.
        EventData::BuildQueued { node_id, .. } => out.extend(node_subjects([*node_id])),
        // The instance's node attaches the exec its client waits for.
        EventData::ExecStarted { node_id, .. } => out.extend(node_subjects([*node_id])),
        // Edges route to healthy instances at their addresses.
        EventData::InstanceObserved { .. } => out.push(format!("{PREFIX}.routes")),
        // Edges serve certificates. (Open ACME challenges are no events: the issuer
        // publishes on the same subject itself, see zeitwork-certs.)
        EventData::CertificateStored { .. } | EventData::CertificateRemoved { .. } => {
            out.push(format!("{PREFIX}.certificates"))
        }
        // A cancelled build's node stops it.
        EventData::BuildStateChanged {
            build_id,
            state: zeitwork_core::build::BuildState::Cancelled,
            ..
        } => {
            let node: Option<(Uuid,)> = sqlx::query_as("SELECT node_id FROM builds WHERE id = $1")
                .bind(build_id)
                .fetch_optional(&mut *conn)
                .await?;
            out.extend(node_subjects(node.map(|(n,)| n)));
        }
        EventData::OrgCreated { .. }
        | EventData::BuildStateChanged { .. }
        | EventData::OrgQuotasSet { .. }
        | EventData::UserAdded { .. }
        | EventData::UserRemoved { .. }
        | EventData::TokenCreated { .. }
        | EventData::TokenRevoked { .. }
        | EventData::AppCreated { .. }
        | EventData::EnvCreated { .. }
        | EventData::ReleaseCreated { .. }
        | EventData::NodeJoinTokenCreated { .. }
        | EventData::AcmeAccountStored { .. }
        | EventData::RepositoryConnected { .. }
        | EventData::RepositoryDisconnected { .. }
        | EventData::WebhookDelivered { .. }
        // Audit only: nothing runs until the grant is redeemed.
        | EventData::ExecGranted { .. }
        // Its instances stop later, with `instances_stopped`.
        | EventData::StandbyEnded { .. } => {}
    }
    Ok(out)
}

/// One subject per node (each once, in a stable order).
fn node_subjects(nodes: impl IntoIterator<Item = Uuid>) -> Vec<String> {
    let nodes: BTreeSet<Uuid> = nodes.into_iter().collect();
    nodes
        .iter()
        .map(|n| format!("{PREFIX}.instances.node.{n}"))
        .collect()
}

/// Whose instances' nodes to notify. An instance never changes node once placed, so
/// reading the projection later than the event still names the right nodes.
enum Holder<'a> {
    Env(Uuid),
    Deployment(Uuid),
    Instances(&'a [Uuid]),
}

async fn nodes_of(
    conn: &mut PgConnection,
    holder: Holder<'_>,
) -> Result<BTreeSet<Uuid>, ListenerError> {
    const NODES: &str = "SELECT DISTINCT node_id FROM instances WHERE node_id IS NOT NULL AND";
    let query = match holder {
        Holder::Env(id) => sqlx::query_as(AssertSqlSafe(format!("{NODES} env_id = $1"))).bind(id),
        Holder::Deployment(id) => {
            sqlx::query_as(AssertSqlSafe(format!("{NODES} deployment_id = $1"))).bind(id)
        }
        Holder::Instances(ids) => {
            sqlx::query_as(AssertSqlSafe(format!("{NODES} id = ANY($1)"))).bind(ids)
        }
    };
    let rows: Vec<(Uuid,)> = query.fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}
