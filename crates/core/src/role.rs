//! What an API token may do inside its org. Platform (operator) tokens have no org
//! and may do everything; org tokens never see another org.

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read-only access to everything in the org except secret values (which nobody reads).
    Reader,
    /// Reader plus deploys, scaling, rollbacks, secrets, routes and domains.
    Deployer,
    /// Deployer plus managing apps, envs, users and tokens of the org.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "deployer" => Some(Role::Deployer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether a token with this role satisfies an action that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin.allows(Role::Deployer));
        assert!(Role::Deployer.allows(Role::Reader));
        assert!(!Role::Reader.allows(Role::Deployer));
        assert!(!Role::Deployer.allows(Role::Admin));
    }

    #[test]
    fn parse_round_trips() {
        for r in [Role::Reader, Role::Deployer, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
