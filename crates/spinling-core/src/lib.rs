//! Spinling's core: Qinling's resources and rules, with storage behind the `Database` seam and
//! HTTP as plain values, so all of it is unit-tested natively.
//!
//! Three layers, each a folder, and imports point down only (`tests/layers.rs` fails on one
//! that points up, and on any cycle between modules):
//! - `web`: the HTTP edge and route handlers;
//! - `domain`: the resources and their rules;
//! - `store`: the database seam, migrations, packages, listing and the cache.
//!
//! The files beside them (`error`, `id`, `time`, `redacted`) are small foundations every layer
//! uses; they import nothing of the crate.

pub mod domain;
pub mod error;
pub mod id;
mod redacted;
pub mod store;
#[cfg(test)]
mod testing;
pub mod time;
pub mod web;
