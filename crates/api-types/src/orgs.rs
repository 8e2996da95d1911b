//! Orgs, their users and tokens, and their quotas.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeitwork_core::{QuotaOverrides, Quotas, Role};

use crate::list::page;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// An API token as anyone may see it: never its secret nor its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Token {
    pub id: Uuid,
    /// `null` for a platform token.
    pub org_id: Option<Uuid>,
    pub name: String,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// The body that creates an org, an app, an env or a region: its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewName {
    /// A DNS label: lowercase letters, digits and `-`, not at either end.
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for; at least one visible character.
    #[schemars(length(min = 1, max = 100), regex(pattern = "\\S"))]
    pub name: String,
    pub role: Role,
}

/// A token just created: its secret is shown here once.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreatedToken {
    pub token: Token,
    /// `zw_…`; `null` when this answer replays an earlier one (the secret is not kept).
    pub secret: Option<String>,
    /// Why `secret` is `null`, on a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// `name@example.com` (printable ASCII); stored in lowercase.
    #[schemars(
        length(min = 5, max = 254),
        regex(pattern = "^[!-?A-~]+@[!-?A-~]+\\.[!-?A-~]+$")
    )]
    pub email: String,
    pub role: Role,
}

/// Whether `email` is what [`NewUser::email`] takes: printable ASCII, one `@` with
/// something before it, and after it a domain with a dot inside; at most 254 characters.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let bare = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'@');
    let dotted = domain
        .char_indices()
        .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len());
    email.chars().count() <= 254 && bare(local) && bare(domain) && dotted
}

#[cfg(test)]
mod tests {
    use super::valid_email;

    #[test]
    fn emails_follow_the_documented_pattern() {
        for ok in ["a@b.c", "Ann.Lee+x@mail.example.com", "a@b..c"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a@b", "@b.c", "a@.c", "a@b.", " a@b.c", "a b@c.d", "a@b@c.d", "é@b.c",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}

/// What an org holds against its quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrgUsage {
    /// Instances meant to run, and their memory in MiB.
    pub instances: u64,
    pub memory_mb: u64,
    pub routes: u64,
    pub tcp_routes: u64,
    pub domains: u64,
    /// MiB of images in the platform registry, as last measured.
    pub registry_mb: u64,
}

/// An org's quotas: those in force, the org's own settings, the platform's, and what
/// the org holds against them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrgQuotas {
    pub org: String,
    /// In force: `own` where set, else `platform`.
    pub quotas: Quotas,
    /// Set by a platform admin for this org alone; `null` is the platform's.
    pub own: QuotaOverrides,
    pub platform: Quotas,
    pub usage: OrgUsage,
}

page!(
    /// `GET /api/v1/orgs`.
    OrgList, orgs, Org
);
page!(
    /// `GET /api/v1/orgs/{org}/tokens`.
    TokenList, tokens, Token
);
page!(
    /// `GET /api/v1/orgs/{org}/users`.
    UserList, users, User
);

crate::redacted_debug!(CreatedToken { token, secret_note } hides { secret });
