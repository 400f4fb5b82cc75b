//! The Linkrunner Data API client: HTTP, rate limit, retries, the wire types, and the turning
//! of the API's rows into the model's.

pub mod attribution;
pub mod budget;
pub mod client;
pub mod deadline;
pub mod error;
pub mod http;
pub mod models;
mod pace;
pub mod reporting;
mod request;
pub mod rows;

pub use client::{ApiClient, ApiStats, ClientSettings};
pub use error::ApiError;
pub use models::Page;
