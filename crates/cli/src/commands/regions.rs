//! `regions`: where nodes are placed, and how clients reach each region from outside
//! (the addresses and client networks `zeitwork server dns` answers from).

use zeitwork_api_types::{NewName, Region, RegionAddresses, RegionList};

use super::{create, list};
use crate::context::{Ctx, Scope};
use crate::error::Result;
use crate::output::{self, Cell, Column, col};

#[derive(Debug, Default, clap::Subcommand)]
pub enum RegionsAction {
    /// List regions with their public addresses and client networks
    #[default]
    List,
    /// Create a region (platform token; enrolling a node creates its region too)
    Create { name: String },
    /// Set a region's public addresses and client networks, replacing the previous ones
    /// (platform token; creates the region when it does not exist)
    Set {
        name: String,
        /// A public address of the region's load balancers or edges (repeat for more)
        #[arg(long = "address", value_name = "IP")]
        addresses: Vec<String>,
        /// A client network this region serves, as a CIDR (repeat for more)
        #[arg(long = "client-network", value_name = "CIDR")]
        client_networks: Vec<String>,
    },
}

const REGIONS: &[Column<Region>] = &[
    col("NAME", |r| r.name.cell()),
    col("ADDRESSES", |r| r.addresses.cell()),
    col("CLIENT NETWORKS", |r| r.client_networks.cell()),
    col("CREATED", |r| r.created_at.cell()),
];

pub async fn regions(ctx: &Ctx, action: RegionsAction) -> Result<()> {
    match action {
        RegionsAction::List => {
            list::<RegionList>(ctx, ctx.path(Scope::Platform, &["regions"])?, REGIONS).await
        }
        RegionsAction::Create { name } => {
            let path = ctx.path(Scope::Platform, &["regions"])?;
            let done = format!("Created region {name}");
            create::<_, Region>(ctx, path, &NewName { name }, &done)
                .await
                .map(drop)
        }
        RegionsAction::Set {
            name,
            addresses,
            client_networks,
        } => {
            let path = ctx.path(Scope::Platform, &["regions", &name])?;
            let body = RegionAddresses {
                addresses,
                client_networks,
            };
            let answer: Region = ctx.client()?.put(&path, &body).await?;
            if ctx.json() {
                return output::emit_json(&answer);
            }
            output::emit(&output::object(REGIONS, &answer))
        }
    }
}
