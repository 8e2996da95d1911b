//! Hostname rules shared by the resolver (which certificate serves a name) and the issuer
//! (which names need one).

/// The domain a wildcard must be for to cover `host`: `a.example.com` → `example.com`.
/// A wildcard covers exactly one label, and never a bare top-level domain (`*.com`).
pub(crate) fn parent(host: &str) -> Option<&str> {
    let (_, parent) = host.split_once('.')?;
    parent.contains('.').then_some(parent)
}

/// `example.com` for the wildcard name `*.example.com`.
pub(crate) fn wildcard_base(name: &str) -> Option<&str> {
    name.strip_prefix("*.")
}

/// Whether a public CA can be asked for `host`: a DNS name of two labels or more, not a
/// wildcard, not an IP address and not `localhost` or under it (which every resolver
/// keeps on the machine, so no CA can reach it).
pub(crate) fn issuable(host: &str) -> bool {
    let labels_ok = host.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    labels_ok
        && host.len() <= 253
        && host.contains('.')
        && host != "localhost"
        && !host.ends_with(".localhost")
        && host.parse::<std::net::IpAddr>().is_err()
        && !host
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label_under_a_registrable_domain() {
        assert_eq!(parent("a.example.com"), Some("example.com"));
        assert_eq!(parent("a.b.example.com"), Some("b.example.com"));
        assert_eq!(parent("example.com"), None, "*.com covers nothing");
        assert_eq!(parent("localhost"), None);
        assert_eq!(wildcard_base("*.example.com"), Some("example.com"));
        assert_eq!(wildcard_base("example.com"), None);
    }

    #[test]
    fn only_public_dns_names_are_issuable() {
        for ok in ["example.com", "web-acme.zeitwork.io", "a1.b2.example"] {
            assert!(issuable(ok), "{ok}");
        }
        for bad in [
            "localhost",
            "web-acme.zeitwork.localhost",
            "*.example.com",
            "127.0.0.1",
            "10.0.0.1",
            "single",
            "-bad.example.com",
            "UPPER.example.com",
            "a..example.com",
            "under_score.example.com",
        ] {
            assert!(!issuable(bad), "{bad}");
        }
    }
}
