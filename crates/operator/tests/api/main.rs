//! The operator's HTTP API against a real Postgres: every route, every org boundary,
//! every class of bad input.

mod deploys;
mod inputs;
mod isolation;
mod openapi;
mod secrets;
mod support;
