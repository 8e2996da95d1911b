//! Docker token-auth scopes: what a client asks for (`repository:acme/web:pull,push`,
//! repeated `scope` parameters) and what a token grants (the `access` claim).

use serde::Serialize;

/// Longest repository name the distribution spec allows.
const NAME_MAX: usize = 255;

/// An action on a repository the token service knows; others asked for are never granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
    /// Everything (`*`): only in the catalog access the operator gives itself; never
    /// parsed from a client's scope, so never granted to one.
    #[serde(rename = "*")]
    All,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// One `scope` parameter: actions asked for on one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The repository, e.g. `acme/web`.
    pub repository: String,
    /// Known actions asked for, sorted, without duplicates.
    pub actions: Vec<Action>,
}

/// A scope that is not `repository:NAME:ACTIONS` with a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {scope:?}: {reason}")]
pub struct ScopeError {
    pub scope: String,
    pub reason: &'static str,
}

impl Scope {
    /// Parses `repository:NAME:ACTIONS` (`repository(plugin):…` too). The registry's
    /// `registry:catalog:*` and other types are refused: no token lists repositories.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let bad = |reason| ScopeError {
            scope: text.chars().take(300).collect(),
            reason,
        };
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| bad("no resource type"))?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(|| bad("no actions"))?;
        if kind != "repository" && kind != "repository(plugin)" {
            return Err(bad("only repository scopes are granted"));
        }
        if !valid_name(name) {
            return Err(bad(
                "the repository name is not lowercase path components of letters and digits joined by '.', '_', '__', '-' and '/'",
            ));
        }
        let mut actions: Vec<Action> = actions.split(',').filter_map(Action::parse).collect();
        actions.sort();
        actions.dedup();
        Ok(Scope {
            repository: name.to_owned(),
            actions,
        })
    }

    /// The repository's first path component (the org, for the platform's repositories).
    pub fn namespace(&self) -> &str {
        self.repository
            .split_once('/')
            .map_or(self.repository.as_str(), |(first, _)| first)
    }
}

/// What one token grants on one repository: the JWT's `access` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub actions: Vec<Action>,
}

impl Access {
    /// `actions` on `repository`.
    pub fn repository(repository: &str, actions: Vec<Action>) -> Access {
        Access {
            kind: "repository",
            name: repository.to_owned(),
            actions,
        }
    }

    /// Listing the registry's repositories (`registry:catalog:*`).
    pub fn catalog() -> Access {
        Access {
            kind: "registry",
            name: "catalog".into(),
            actions: vec![Action::All],
        }
    }
}

/// The distribution spec's repository name grammar: path components of lowercase letters
/// and digits, separated inside by one `.`, one or two `_`, or any `-`s; `/` between them.
fn valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > NAME_MAX {
        return false;
    }
    name.split('/').all(|component| {
        let bytes = component.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
            return false;
        }
        // Separators: ".", "_", "__", or "-"+; never two separators of other kinds in a row.
        let mut run = String::new();
        for &b in bytes {
            if alnum(&b) {
                if !matches!(run.as_str(), "" | "." | "_" | "__") && !run.bytes().all(|c| c == b'-')
                {
                    return false;
                }
                run.clear();
            } else if matches!(b, b'.' | b'_' | b'-') {
                run.push(char::from(b));
            } else {
                return false;
            }
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_keep_known_actions_only() {
        let s = Scope::parse("repository:acme/web:push,pull,pull,*").unwrap();
        assert_eq!(s.repository, "acme/web");
        assert_eq!(s.actions, [Action::Pull, Action::Push]);
        assert_eq!(s.namespace(), "acme");
        assert_eq!(
            Scope::parse("repository:solo:pull").unwrap().namespace(),
            "solo"
        );
        let deep = Scope::parse("repository:acme/web/cache:pull").unwrap();
        assert_eq!(deep.namespace(), "acme");
        for bad in [
            "registry:catalog:*",
            "repository:Acme/web:pull",
            "repository:acme//web:pull",
            "repository:acme/web/:pull",
            "repository:-acme/web:pull",
            "repository:acme/w..eb:pull",
            "repository:acme/w___eb:pull",
            "repository:acme/web",
            "repository",
            "repository:../etc:pull",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        for good in ["repository:a/b-c--d:pull", "repository:a/b__c.d:pull"] {
            assert!(Scope::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn access_is_written_as_the_registry_reads_it() {
        let a = Access::repository("acme/web", vec![Action::Pull]);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"type":"repository","name":"acme/web","actions":["pull"]}"#
        );
    }
}
