//! Postgres: connecting, what its errors mean, migrations, the run lock and the tables.

pub mod campaigns;
pub mod columns;
mod connect;
pub mod errors;
pub mod forget;
mod lock;
pub mod lookups;
pub mod migrate;
pub mod personal;
pub mod reporting;
pub mod schema;
pub mod state;
pub mod status;
pub mod webhooks;
pub mod writer;

pub use connect::{connect, connect_options, session, KeptSession, SharedSession, Target};
pub use errors::{is_data_error, is_transient, refused};
pub use lock::{try_lock, try_lock_reporting, RunLock};
pub use migrate::{migrate, prepare, MIGRATOR};
pub use schema::Schema;
