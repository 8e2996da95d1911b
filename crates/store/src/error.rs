use thiserror::Error;

/// Store failures, phrased for the API layer to map onto HTTP statuses.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot connect to Postgres: {0} (check DATABASE_URL)")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A uniqueness rule was broken; `field` names the input that clashed.
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A node shipped something for an instance that is not placed on it (or no longer
    /// exists): it must not write into another node's, or another tenant's, instances.
    #[error("instance {0} is not placed on this node")]
    NotOnNode(uuid::Uuid),
    /// A node shipped log lines of a build another node runs (or none does).
    #[error("build {0} does not run on this node")]
    BuildNotOnNode(uuid::Uuid),
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        if let Some((field, message)) = e
            .as_database_error()
            .and_then(|db| db.constraint())
            .and_then(conflict_for)
        {
            return StoreError::Conflict {
                field,
                message: message.to_owned(),
            };
        }
        StoreError::Db(e)
    }
}

/// Unique constraints a user can run into, named in the migrations, and how to say so.
fn conflict_for(constraint: &str) -> Option<(&'static str, &'static str)> {
    Some(match constraint {
        "orgs_name_unique" => ("name", "an org with this name already exists"),
        "apps_name_unique" => ("name", "an app with this name already exists in the org"),
        "envs_name_unique" => ("name", "an env with this name already exists for the app"),
        "users_email_unique" => ("email", "a user with this email already exists in the org"),
        "regions_name_unique" => ("name", "a region with this name already exists"),
        "nodes_name_unique" => ("name", "a node with this name already exists"),
        "routes_host_unique" => ("host", "this hostname is already routed"),
        "routes_listen_port_unique" => ("mode", "another tcp route took this port; retry"),
        "domains_env_hostname_unique" => ("hostname", "this env has already added this domain"),
        "domains_hostname_verified" => ("hostname", "another env has verified this domain"),
        "platform_labels_label_unique" => ("name", "this platform hostname is taken"),
        "deployments_slug_unique" | "releases_number_unique" => {
            ("id", "a concurrent deploy won the race; retry")
        }
        _ => return None,
    })
}
