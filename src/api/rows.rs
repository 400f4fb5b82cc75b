//! Turning the API's items into the model's rows: attributed users (`user`, reading a row's
//! `members`, its `key`, its `typed` columns and `time`s) and the campaigns of the list
//! (`campaign`). An item whose text Postgres cannot store is set aside whole ([`crate::model::storable`]).

pub mod campaign;
mod key;
mod members;
mod time;
mod typed;
mod user;

pub use crate::model::user::{Rejected, UserRow, TEXT_FIELDS, TIME_FIELDS};
pub use time::wire_time;
