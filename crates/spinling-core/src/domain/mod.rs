//! Qinling's resources and their rules: one module per resource, the vocabulary they share
//! (`types`, `commands`, `context`), with no knowledge of HTTP.

pub mod aliases;
pub mod commands;
pub mod context;
pub mod diff;
pub mod executions;
pub mod forgetting;
pub mod functions;
pub mod jobs;
pub mod json;
pub mod references;
pub mod rollouts;
pub mod routing;
pub mod rules;
pub mod runtimes;
pub mod stats;
pub mod stored_output;
pub mod types;
pub mod versions;
pub mod webhooks;
pub mod workers;
