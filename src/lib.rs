//! linkrunner-sync: keeps a Postgres warehouse in step with Linkrunner's campaigns and the users
//! attributed to them.
//!
//! The path a record takes: [`api`] fetches pages from Linkrunner, [`sync`] plans the time windows
//! and drives the run, [`db`] writes rows and checkpoints to Postgres, all over the types of
//! [`model`]. The Linkrunner simulator the tests, the benchmark and the demo run against is a
//! crate of its own (`linkrunner-sim`), linked only with the `demo` feature.

pub mod api;
pub mod bounds;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod error;
pub mod model;
pub mod output;
pub mod receive;
pub mod sync;

#[cfg(test)]
pub mod testing;
