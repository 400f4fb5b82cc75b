//! HTTP client for the Data API: one global rate limit, jittered retries, the key in its header.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

use crate::api::models::{preview, Page};
use crate::api::ApiError;
use crate::memory::{Hold, MemoryBudget, PER_BODY_BYTE};
use crate::sync::span::api_timestamp;

/// Largest page the API serves.
pub const MAX_LIMIT: u32 = 1000;

#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub base_url: Url,
    pub api_key: SecretString,
    pub rps: f64,
    pub timeout: Duration,
    pub max_retries: usize,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
}

/// Counters shared by every request of a run.
#[derive(Debug, Default)]
pub struct ApiStats {
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub server_errors: AtomicU64,
    pub retries: AtomicU64,
}

impl ApiStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    settings: Arc<ClientSettings>,
    limiter: Arc<DefaultDirectRateLimiter>,
    /// After a 429 every request waits until this instant, not only the one that was refused:
    /// the limit is shared, so hammering it from other tasks would only earn more 429s.
    cooldown: Arc<Mutex<Option<Instant>>>,
    /// What a page of attributed users holds while it is read; none when unset.
    budget: Option<MemoryBudget>,
    pub stats: Arc<ApiStats>,
}

impl ApiClient {
    pub fn new(settings: ClientSettings) -> anyhow::Result<Self> {
        let mut key = HeaderValue::from_str(settings.api_key.expose_secret())
            .map_err(|_| anyhow::anyhow!("the API key holds characters a header cannot carry"))?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("linkrunner-key", key);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("linkrunner-sync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // Requests are spaced evenly: a burst of a whole second's quota would trip the server's
        // own per-second window.
        let period = Duration::from_secs_f64(1.0 / settings.rps);
        let quota = Quota::with_period(period)
            .ok_or_else(|| anyhow::anyhow!("--rps is too high"))?
            .allow_burst(NonZeroU32::MIN);
        Ok(ApiClient {
            http,
            settings: Arc::new(settings),
            limiter: Arc::new(RateLimiter::direct(quota)),
            cooldown: Arc::new(Mutex::new(None)),
            budget: None,
            stats: Arc::new(ApiStats::default()),
        })
    }

    /// This client, with each page of attributed users drawing on `budget` before its body is
    /// read ([`PER_BODY_BYTE`] for each byte the response declares) and holding it in
    /// [`Page::hold`].
    pub fn with_budget(mut self, budget: MemoryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// One page of `GET /campaigns?filter=ALL`.
    pub async fn campaigns(&self, page: u64, limit: u32) -> Result<Page, ApiError> {
        let url = self.url(
            "campaigns",
            &[
                ("filter", "ALL".to_string()),
                ("page", page.to_string()),
                ("limit", limit.to_string()),
            ],
        );
        self.get_page(url, "campaigns", None).await
    }

    /// One page of `GET /attributed-users` for `[start, end]` (the server includes both bounds).
    pub async fn attributed_users(
        &self,
        display_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        page: u64,
        limit: u32,
    ) -> Result<Page, ApiError> {
        let url = self.url(
            "attributed-users",
            &[
                ("display_id", display_id.to_string()),
                ("start_timestamp", api_timestamp(start)),
                ("end_timestamp", api_timestamp(end)),
                ("timezone", "UTC".to_string()),
                ("page", page.to_string()),
                ("limit", limit.to_string()),
            ],
        );
        self.get_page(url, "users", self.budget.as_ref()).await
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.settings.base_url.clone();
        url.path_segments_mut()
            .expect("base URL is http(s)")
            .pop_if_empty()
            .push(path);
        url.query_pairs_mut().extend_pairs(query);
        url
    }

    async fn get_page(
        &self,
        url: Url,
        list_key: &str,
        budget: Option<&MemoryBudget>,
    ) -> Result<Page, ApiError> {
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.settings.retry_min_delay)
            .with_max_delay(self.settings.retry_max_delay)
            .with_max_times(self.settings.max_retries);
        (|| self.get_once(url.clone(), list_key, budget))
            .retry(backoff)
            .when(ApiError::is_retryable)
            .adjust(|e, next| next.map(|d| e.retry_after().unwrap_or(d)))
            .notify(|e, wait| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                if matches!(e, ApiError::RateLimited { .. }) {
                    let until = Instant::now() + wait;
                    let mut cooldown = self.cooldown.lock().expect("not poisoned");
                    *cooldown = Some(cooldown.map_or(until, |c| c.max(until)));
                }
                tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "retrying");
            })
            .await
    }

    async fn get_once(
        &self,
        url: Url,
        list_key: &str,
        budget: Option<&MemoryBudget>,
    ) -> Result<Page, ApiError> {
        let cooldown = *self.cooldown.lock().expect("not poisoned");
        if let Some(until) = cooldown {
            tokio::time::sleep_until(until).await;
        }
        self.limiter.until_ready().await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        // The time limit holds for the headers and again for the body, not for the wait on the
        // budget between them.
        let limit = self.settings.timeout;
        let response = tokio::time::timeout(limit, self.http.get(url).send())
            .await
            .map_err(|_| ApiError::timed_out(limit))?
            .map_err(ApiError::from_reqwest)?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let declared = response.content_length();
        let mut hold = match (budget, declared) {
            (Some(budget), Some(n)) if status == StatusCode::OK => {
                budget.take(n as usize * PER_BODY_BYTE).await
            }
            _ => Hold::default(),
        };
        let body = tokio::time::timeout(limit, response.bytes())
            .await
            .map_err(|_| ApiError::timed_out(limit))?
            .map_err(ApiError::from_reqwest)?;
        if let (Some(budget), None, StatusCode::OK) = (budget, declared, status) {
            hold = budget.take(body.len() * PER_BODY_BYTE).await;
        }
        match status {
            StatusCode::OK => Page::parse(&body, list_key).map(|page| Page { hold, ..page }),
            StatusCode::NO_CONTENT => Ok(Page::default()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ApiError::Unauthorized {
                status: status.as_u16(),
            }),
            StatusCode::NOT_FOUND => Err(ApiError::NotFound),
            StatusCode::TOO_MANY_REQUESTS => {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                Err(ApiError::RateLimited { retry_after })
            }
            s if s.is_server_error() => {
                self.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                Err(ApiError::Server { status: s.as_u16() })
            }
            s => Err(ApiError::Rejected {
                status: s.as_u16(),
                message: error_message(&body),
            }),
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Linkrunner; it is ignored).
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(300.0)))
}

/// The `msg` of an error body, or the start of the raw text.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| preview(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn error_message_prefers_msg() {
        assert_eq!(
            error_message(br#"{"msg":"Invalid limit","status":422}"#),
            "Invalid limit"
        );
        assert_eq!(error_message(b"<h1>Bad</h1>"), "<h1>Bad</h1>");
    }
}
