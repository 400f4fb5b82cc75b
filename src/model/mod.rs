//! The model at the bottom of the job: time as the job speaks it, the windows a campaign's
//! history is read in, the campaigns and users it stores, the personal data in them and how it is protected, and
//! what a run ends with. It imports
//! nothing else of the crate; every layer above imports it.

pub mod campaign;
pub mod figures;
pub mod lookup;
pub mod personal;
pub mod report_days;
pub mod reporting;
pub mod run;
pub mod schema;
pub mod storable;
pub mod time;
pub mod user;
pub mod webhook;
pub mod window;
