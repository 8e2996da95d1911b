//! Layer 4 of the platform: what works on TCP streams without understanding the
//! protocol inside them (docs/architecture.md).
//!
//! - [`client_hello`] reads the TLS ClientHello a client sends first, so the edge can
//!   route `tls-passthrough` routes by SNI without terminating TLS, and tell ACME
//!   TLS-ALPN-01 handshakes apart from the rest.
//! - [`proxy_v2`] writes and reads PROXY protocol v2 headers, so the real client address
//!   survives a hop through a TCP proxy (load balancer → edge, edge → app).
//! - [`lb`] is the TCP load balancer behind `zeitwork server lb`, in front of several
//!   edges.
//! - [`splice`] copies a relayed connection both ways with an idle bound, for every
//!   relay (the load balancer's and the edge's).

pub mod client_hello;
pub mod lb;
pub mod proxy_v2;
pub mod splice;

mod wire;

#[cfg(test)]
mod fuzz_seeds;

pub use client_hello::{ClientHello, HelloError, peek_client_hello};
pub use lb::{Algorithm, HealthConfig, Lb, LbConfig, LbError, LbStats};
pub use proxy_v2::{Header as ProxyHeader, ProxyError};
pub use splice::{RELAY_IDLE, splice};
