//! Spinling's domain core: Qinling's resources and rules, with storage behind the `Database`
//! seam and HTTP as plain values, so all of it is unit-tested natively.

pub mod aliases;
pub mod api;
pub mod auth;
pub mod cache;
pub mod commands;
pub mod config;
pub mod context;
pub mod cors;
pub mod db;
pub mod diff;
pub mod error;
pub mod executions;
pub mod filters;
pub mod forms;
pub mod functions;
pub mod hosts;
pub mod http;
pub mod id;
pub mod jobs;
pub mod limits;
pub mod migrations;
pub mod packages;
mod redacted;
pub mod rollouts;
pub mod runtimes;
pub mod stats;
#[cfg(test)]
mod testing;
pub mod time;
pub mod types;
pub mod versions;
pub mod webhooks;
pub mod wire;
