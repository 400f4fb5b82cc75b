//! What can go wrong talking to Linkrunner, and which of it is worth retrying.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Linkrunner rejected the API key (HTTP {status}); check LINKRUNNER_API_KEY")]
    Unauthorized { status: u16 },
    #[error("not found (HTTP 404)")]
    NotFound,
    #[error("Linkrunner rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("rate limited (HTTP 429)")]
    RateLimited { retry_after: Option<Duration> },
    #[error("Linkrunner server error (HTTP {status})")]
    Server { status: u16 },
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unreadable response: {0}")]
    Decode(String),
    /// A body past [`crate::api::request::MAX_PAGE_BYTES`]; smaller pages may fit.
    #[error("a page larger than {} MiB was refused", .cap >> 20)]
    TooLarge { cap: usize },
    /// An answer no honest server gives (more rows than asked for, pages without end).
    #[error("Linkrunner broke the API contract: {0}")]
    Protocol(String),
    /// The run was asked to stop.
    #[error("stopped by a signal")]
    Stopped,
}

impl ApiError {
    /// 429, 5xx, connection trouble and garbled bodies are passing faults; the rest are not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. }
                | ApiError::Server { .. }
                | ApiError::Transport(_)
                | ApiError::Decode(_)
        )
    }

    /// The server's own word on when to come back, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// No answer within `--timeout`.
    pub fn timed_out(limit: Duration) -> Self {
        ApiError::Transport(format!("timed out after {limit:?}"))
    }

    pub fn from_reqwest(e: reqwest::Error) -> Self {
        // The URL never holds the key, but drop it anyway: a message should not need it.
        let e = e.without_url();
        // reqwest's own text hides the cause (a certificate that failed, a refused
        // connection) in its sources.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text = format!("{text}: {cause_text}");
            }
            source = cause.source();
        }
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_body() || e.is_decode() {
            "broken response body"
        } else {
            "transport error"
        };
        ApiError::Transport(format!("{kind}: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_faults_are_retried() {
        assert!(ApiError::RateLimited { retry_after: None }.is_retryable());
        assert!(ApiError::Server { status: 503 }.is_retryable());
        assert!(ApiError::Decode("x".into()).is_retryable());
        assert!(!ApiError::Unauthorized { status: 401 }.is_retryable());
        assert!(!ApiError::NotFound.is_retryable());
        assert!(!ApiError::Rejected {
            status: 422,
            message: String::new()
        }
        .is_retryable());
    }
}
