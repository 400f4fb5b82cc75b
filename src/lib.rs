//! linkrunner-sync: keeps a Postgres warehouse in step with Linkrunner's campaigns and the users
//! attributed to them.
//!
//! The path a record takes: [`api`] fetches pages from Linkrunner, [`sync`] plans the time windows
//! and drives the run, [`db`] writes rows and checkpoints to Postgres. [`sim`] is the Linkrunner
//! simulator used by the tests, the benchmarks and the demo.

pub mod api;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod refusal;
pub mod secrets;
pub mod sim;
pub mod status;
pub mod sync;
pub mod telemetry;
pub mod terminal;

#[cfg(test)]
pub mod testing;
