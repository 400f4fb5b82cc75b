//! The Linkrunner Data API client: HTTP, rate limit, retries and the wire types.

pub mod client;
pub mod error;
pub mod models;

pub use client::{ApiClient, ApiStats, ClientSettings};
pub use error::ApiError;
pub use models::Page;
