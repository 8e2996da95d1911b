//! The edge against a real Postgres, with plain HTTP servers standing in for instances.

mod bad_input;
mod express;
mod failover;
mod framing;
mod l4;
mod lifecycle;
mod policy;
mod routing;
mod support;
mod tls;
mod upgrade;
mod waking;
