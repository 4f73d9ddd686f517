//! The HTTP edge: requests and responses as plain values, what arrives on the wire checked
//! before the domain sees it (forms, JSON fields, limits, hosts, CORS, tokens), the settings
//! a deployment chose, and the route handlers in `api`.

pub mod api;
pub mod auth;
pub mod config;
pub mod cors;
pub mod forms;
pub mod hosts;
pub mod http;
pub mod limits;
pub mod listing;
pub mod wire;
