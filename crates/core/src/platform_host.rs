//! Platform hostnames: every env and every deployment is served under the platform's
//! base domain, at `<app>-<org>` (the primary env), `<app>-<env>-<org>` (other envs) and
//! `<app>-<slug>-<org>` (one deployment). The operator, the edge, the certificate issuer
//! and `zeitwork up` all build them here, so they can never disagree.
//!
//! Names may contain `-`, so two tenants' labels can coincide (org `corp` with app
//! `shop-acme` and org `acme-corp` with app `shop` both make `shop-acme-corp`): the
//! operator records every label it hands out and refuses one that is taken (see
//! `platform_labels` in the store), which is what makes them unambiguous.

use crate::name::NameError;

/// The env whose hostname is the app's bare `<app>-<org>`; every new app starts with it.
pub const PRIMARY_ENV: &str = "prod";

/// The longest DNS label (RFC 1035).
pub const MAX_LABEL: usize = 63;
/// The longest hostname DNS can carry (RFC 1035, without the root's dot).
pub const MAX_HOST: usize = 253;

/// The leftmost label of an env's hostname.
pub fn env_label(app: &str, env: &str, org: &str) -> String {
    match env {
        PRIMARY_ENV => format!("{app}-{org}"),
        _ => format!("{app}-{env}-{org}"),
    }
}

/// The leftmost label of one deployment's hostname.
pub fn deployment_label(app: &str, slug: &str, org: &str) -> String {
    format!("{app}-{slug}-{org}")
}

/// The base domain as hostnames use it: lowercase, without a trailing dot.
pub fn base(base_domain: &str) -> String {
    base_domain.trim_end_matches('.').to_ascii_lowercase()
}

/// `<label>.<base domain>`.
pub fn host(label: &str, base_domain: &str) -> String {
    format!("{label}.{}", base(base_domain))
}

/// Whether DNS can carry this label under this base domain.
pub fn check(label: &str, base_domain: &str) -> Result<(), NameError> {
    if label.len() > MAX_LABEL {
        return Err(NameError::TooLong {
            max: MAX_LABEL,
            len: label.len(),
        });
    }
    let len = host(label, base_domain).len();
    if len > MAX_HOST {
        return Err(NameError::TooLong { max: MAX_HOST, len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_scheme() {
        assert_eq!(env_label("shop", PRIMARY_ENV, "acme"), "shop-acme");
        assert_eq!(env_label("shop", "staging", "acme"), "shop-staging-acme");
        assert_eq!(
            deployment_label("shop", "ab12cd3", "acme"),
            "shop-ab12cd3-acme"
        );
        assert_eq!(
            host("shop-acme", "Zeitwork.Test."),
            "shop-acme.zeitwork.test"
        );
    }

    #[test]
    fn different_tenants_can_make_the_same_label_which_is_why_labels_are_claimed() {
        assert_eq!(
            env_label("shop-acme", PRIMARY_ENV, "corp"),
            env_label("shop", PRIMARY_ENV, "acme-corp")
        );
    }

    #[test]
    fn labels_and_hosts_longer_than_dns_allows_are_refused() {
        let long = "a".repeat(27);
        let label = env_label(&long, &long, &long);
        assert_eq!(
            check(&label, "zeitwork.test"),
            Err(NameError::TooLong {
                max: MAX_LABEL,
                len: 83
            })
        );
        assert!(check(&env_label(&long, PRIMARY_ENV, &long), "zeitwork.test").is_ok());
        let base = format!("{}test", "b.".repeat(125));
        assert!(matches!(
            check("shop-acme", &base),
            Err(NameError::TooLong { max: MAX_HOST, .. })
        ));
    }
}
