//! A route's policy applied to one request: rate limits (kept per route across table
//! swaps), the client key for consistent hashing, security headers and CORS.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::header::{COOKIE, HeaderName};
use http::{HeaderMap, HeaderValue};
use uuid::Uuid;
use zeitwork_core::RoutePolicy;
use zeitwork_core::route_policy::{Balance, RateLimit, SECURITY_HEADERS};

use super::balance::key_of;
use crate::table::{RoutingTable, Target};

/// The limiters of one route.
struct RouteLimits {
    per_client: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_route: Option<DefaultDirectRateLimiter>,
}

/// Rate limiters by route; a route's policy never changes (routes are replaced, not
/// edited), so its limiters live as long as the route.
pub(crate) struct Limits {
    routes: RwLock<HashMap<Uuid, Arc<RouteLimits>>>,
    clock: DefaultClock,
}

impl Limits {
    pub(crate) fn new() -> Limits {
        Limits {
            routes: RwLock::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(retry_after)` when `client` (its [`bucket`]) is over a limit of the
    /// target's route.
    pub(crate) fn check(&self, target: &Target, client: IpAddr) -> Result<(), Duration> {
        let (Some(route), Some(limit)) = (target.route(), &target.policy().rate_limit) else {
            return Ok(());
        };
        let limits = self.limits(route, limit);
        let now = self.clock.now();
        if let Some(per_client) = &limits.per_client {
            per_client
                .check_key(&bucket(client))
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        if let Some(per_route) = &limits.per_route {
            per_route
                .check()
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        Ok(())
    }

    fn limits(&self, route: Uuid, limit: &RateLimit) -> Arc<RouteLimits> {
        if let Some(limits) = self.routes.read().expect("not poisoned").get(&route) {
            return limits.clone();
        }
        let quota = |rate: u32| {
            let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
            let burst = limit.burst.and_then(NonZeroU32::new).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        };
        let made = RouteLimits {
            per_client: limit.per_client.map(|r| RateLimiter::keyed(quota(r))),
            per_route: limit.per_route.map(|r| RateLimiter::direct(quota(r))),
        };
        let mut routes = self.routes.write().expect("not poisoned");
        routes
            .entry(route)
            .or_insert_with(|| Arc::new(made))
            .clone()
    }

    /// Drops the limiters of deleted routes and the clients that have been quiet.
    pub(crate) fn retain(&self, table: &RoutingTable) {
        let live = table.route_set();
        let mut routes = self.routes.write().expect("not poisoned");
        routes.retain(|route, _| live.contains(route));
        for limits in routes.values() {
            if let Some(per_client) = &limits.per_client {
                per_client.retain_recent();
            }
        }
    }
}

/// Whose requests a per-client limit counts together: an IPv4 address alone, an IPv6
/// address with its whole /64 (one subscriber or one host gets a /64, so anyone
/// limited by a single address could pick a fresh one per request); an IPv4 address
/// mapped into IPv6 as the IPv4 address.
fn bucket(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((v6.to_bits() & !u128::from(u64::MAX)).into()),
        },
    }
}

/// What identifies the client for consistent hashing (`None` when not hashing).
pub(crate) fn client_key(policy: &RoutePolicy, headers: &HeaderMap, client: IpAddr) -> Option<u64> {
    if policy.balance != Balance::ConsistentHash {
        return None;
    }
    let on = policy.hash_on.as_deref().unwrap_or("client-ip");
    let value = if let Some(name) = on.strip_prefix("header:") {
        headers.get(name).map(HeaderValue::as_bytes)
    } else if let Some(name) = on.strip_prefix("cookie:") {
        cookie(headers, name).map(str::as_bytes)
    } else {
        None
    };
    // Without the header or cookie, the client's address is the next best thing.
    Some(match value {
        Some(value) => key_of(value),
        None => match client {
            IpAddr::V4(ip) => key_of(&ip.octets()),
            IpAddr::V6(ip) => key_of(&ip.octets()),
        },
    })
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let pairs = headers.get_all(COOKIE).into_iter();
    pairs
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// Adds the security headers the answer lacks (HSTS over HTTPS only); the app's own
/// values win, and the route can change or turn off each default.
pub(crate) fn security_headers(headers: &mut HeaderMap, policy: &RoutePolicy, secure: bool) {
    for (name, text) in security_header_values(policy, secure) {
        let name = HeaderName::from_static(name);
        if headers.contains_key(&name) {
            continue;
        }
        // The defaults are static text: no allocation on every answer.
        let value = match text {
            HeaderText::Default(text) => Some(HeaderValue::from_static(text)),
            HeaderText::Route(text) => HeaderValue::from_str(text).ok(),
        };
        if let Some(value) = value {
            headers.insert(name, value);
        }
    }
}

/// A security header's value: the platform's default or the route's own.
pub(crate) enum HeaderText<'a> {
    Default(&'static str),
    Route(&'a str),
}

impl HeaderText<'_> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            HeaderText::Default(text) => text,
            HeaderText::Route(text) => text,
        }
    }
}

/// The security headers `policy` asks for (lowercase names), before the app's own.
pub(crate) fn security_header_values(
    policy: &RoutePolicy,
    secure: bool,
) -> impl Iterator<Item = (&'static str, HeaderText<'_>)> {
    SECURITY_HEADERS
        .into_iter()
        .filter_map(move |(name, default)| {
            if name == "strict-transport-security" && !secure {
                return None;
            }
            match policy.headers.get(name) {
                None => Some((name, HeaderText::Default(default))),
                Some(value) if value.is_empty() => None,
                Some(value) => Some((name, HeaderText::Route(value))),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> RoutePolicy {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn security_headers_fill_gaps_and_follow_the_route() {
        let mut headers = HeaderMap::new();
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        security_headers(&mut headers, &RoutePolicy::default(), false);
        assert_eq!(headers["x-frame-options"], "DENY", "the app's value wins");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(
            !headers.contains_key("strict-transport-security"),
            "HTTPS only"
        );

        let mut headers = HeaderMap::new();
        let p = policy(serde_json::json!({"headers": {
            "strict-transport-security": "max-age=60", "referrer-policy": ""}}));
        security_headers(&mut headers, &p, true);
        assert_eq!(headers["strict-transport-security"], "max-age=60");
        assert!(!headers.contains_key("referrer-policy"));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64_and_ipv4_ones_by_their_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("2001:db8:1:2::ffff")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("2001:db8:1:3::1")), ip("2001:db8:1:3::"));
        assert_eq!(bucket(ip("198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(bucket(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
    }

    #[test]
    fn hash_keys_come_from_the_named_cookie_or_header_else_the_address() {
        let ip = IpAddr::from([192, 0, 2, 1]);
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; session=xyz"));
        let by_cookie =
            policy(serde_json::json!({"balance": "consistent-hash", "hash_on": "cookie:session"}));
        assert_eq!(client_key(&by_cookie, &headers, ip), Some(key_of(b"xyz")));
        assert_eq!(
            client_key(&by_cookie, &HeaderMap::new(), ip),
            Some(key_of(&[192, 0, 2, 1]))
        );
        assert_eq!(client_key(&RoutePolicy::default(), &headers, ip), None);
    }
}
