//! Linkrunner's webhooks, pushed as the vendor's page describes: an `install` event when an
//! install is attributed (organic ones too) and a `signup` event on every SDK signup, POSTed
//! as JSON with the `linkrunner-key` header to one target, retried after 1, 2 and 4 s, then
//! given up; with seeded faults (drop, double, delay, reorder) and a record of every request.
//!
//! From the bottom up: `config` and `args` (settings), `event` (the body, from the data
//! model), `listing` and `outbox` (the record, in the state), `send` (the background task)
//! and `api` (steering, over the state and the sender).

pub(crate) mod api;
pub(crate) mod args;
pub(crate) mod config;
pub(crate) mod event;
pub(crate) mod listing;
pub(crate) mod outbox;
pub(crate) mod send;

pub use args::WebhookArgs;
pub use config::{check_url, WebhookConfig, WebhookFaults};
pub use listing::{Attempt, EventFaults, Outcome, WebhookEvent};
