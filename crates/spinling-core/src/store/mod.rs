//! Storage: the `Database` seam and its migrations, package bytes in chunks, listing and
//! paging, and the key-value cache that may be lost at any time.

pub mod backup;
pub mod cache;
pub mod db;
pub mod dialect;
pub mod durability;
pub mod filters;
pub mod migrations;
pub mod packages;
pub mod postgres;
