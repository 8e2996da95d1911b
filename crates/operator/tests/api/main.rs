//! The operator's HTTP API against a real Postgres: every route, every org boundary,
//! every class of bad input.

mod agents;
mod autoscale;
mod builds;
mod deploys;
mod domains;
mod enrollment;
mod exec;
mod hostnames;
mod inputs;
mod isolation;
mod logs;
mod monitor;
mod openapi;
mod quotas;
mod registry;
mod registry_gc;
mod restart;
mod routes;
mod secrets;
mod sessions;
mod standby;
mod support;
mod webhooks;
