//! Postgres is the only source of truth. Every change is appended to the `events`
//! log and applied to the projection tables in the same transaction, by one function
//! ([`project::apply`]), so replaying the log rebuilds the same tables.

pub mod agents;
mod error;
pub mod exec;
pub mod idempotency;
pub mod leader;
pub mod load;
pub mod log;
pub mod logs;
pub mod model;
pub mod project;
pub mod read;
pub mod rebuild;
pub mod registry;
pub mod sessions;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

pub use error::StoreError;

/// Embedded migrations, applied on connect.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

pub type Tx = Transaction<'static, Postgres>;

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::Connect)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin().await?)
    }
}
