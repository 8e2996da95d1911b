//! Which subjects hear about an event. Agents subscribe to their node's subject (and the
//! broadcast one), edges to routes; `zw.v1.events` carries everything, for tools.

use std::collections::BTreeSet;

use sqlx::PgConnection;
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
            out.extend(nodes.iter().map(|n| format!("{PREFIX}.instances.node.{n}")));
            out.push(format!("{PREFIX}.routes"));
        }
        EventData::ProcessScaled { deployment_id, .. } => {
            let nodes = nodes_of(conn, Holder::Deployment(*deployment_id)).await?;
            out.extend(nodes.iter().map(|n| format!("{PREFIX}.instances.node.{n}")));
            out.push(format!("{PREFIX}.routes"));
        }
        // Their instances are gone from the projections already: tell every agent.
        EventData::OrgDeleted { .. }
        | EventData::AppDeleted { .. }
        | EventData::EnvDeleted { .. } => {
            out.push(format!("{PREFIX}.instances"));
            out.push(format!("{PREFIX}.routes"));
        }
        EventData::RouteCreated { .. }
        | EventData::RouteDeleted { .. }
        | EventData::DomainAdded { .. }
        | EventData::DomainRemoved { .. } => out.push(format!("{PREFIX}.routes")),
        EventData::SecretSet { .. } | EventData::SecretUnset { .. } => {
            out.push(format!("{PREFIX}.secrets"))
        }
        EventData::NodeRegistered { .. } | EventData::RegionCreated { .. } => {
            out.push(format!("{PREFIX}.nodes"))
        }
        EventData::OrgCreated { .. }
        | EventData::UserAdded { .. }
        | EventData::UserRemoved { .. }
        | EventData::TokenCreated { .. }
        | EventData::TokenRevoked { .. }
        | EventData::AppCreated { .. }
        | EventData::EnvCreated { .. }
        | EventData::ReleaseCreated { .. } => {}
    }
    Ok(out)
}

/// Whose instances' nodes to notify.
enum Holder {
    Env(Uuid),
    Deployment(Uuid),
}

async fn nodes_of(
    conn: &mut PgConnection,
    holder: Holder,
) -> Result<BTreeSet<Uuid>, ListenerError> {
    let (sql, id) = match holder {
        Holder::Env(id) => (
            "SELECT DISTINCT node_id FROM instances WHERE env_id = $1 AND node_id IS NOT NULL",
            id,
        ),
        Holder::Deployment(id) => (
            "SELECT DISTINCT node_id FROM instances WHERE deployment_id = $1 AND node_id IS NOT NULL",
            id,
        ),
    };
    let rows: Vec<(Uuid,)> = sqlx::query_as(sql).bind(id).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}
