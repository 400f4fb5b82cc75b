//! The integration tests, one binary with a module per subject: against a real Postgres (a
//! fresh database per test) and the simulator over loopback.

mod common;

mod attribution;
mod cli;
mod deadlines;
mod deploy;
mod deployed;
mod docs;
mod faults;
mod forget;
mod history;
mod hostile;
mod hostile_env;
mod hostile_rows;
mod memory;
mod personal;
mod pooler;
mod projects;
mod receive;
mod receive_hostile;
mod receive_sim;
mod receive_spool;
mod reconcile;
mod reliability;
mod reporting;
mod reporting_hostile;
mod reporting_sync;
mod sql;
mod sql_attribution;
mod sync;
mod tls;
mod trust;
mod writer;
