use std::time::Duration;

use zeitwork_store::StoreError;

/// Why the edge could not start or stop as asked.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The first routing table must be complete before any request is served.
    #[error(
        "cannot read the routing table from Postgres: {0}; the edge serves nothing until it has \
         read one whole (check DATABASE_URL and that the operator has migrated the database)"
    )]
    Load(#[source] StoreError),
    /// Shutdown stopped waiting for requests still in flight.
    #[error(
        "connections were still open {0:?} after shutdown began and were cut; raise the drain \
         timeout if requests legitimately take longer"
    )]
    Drain(Duration),
    #[error("cannot listen: {0}; is another program (not an edge) using the port?")]
    Bind(#[source] std::io::Error),
}
