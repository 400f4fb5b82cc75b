//! HTTP client for the Data API: one global rate limit, jittered retries, the key in its header.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use governor::Quota;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::api::budget::{Hold, MemoryBudget, PER_BODY_BYTE};
use crate::api::deadline::Deadline;
use crate::api::http::{self, BodyError};
use crate::api::models::{preview, Page};
use crate::api::pace::Pace;
use crate::api::reporting::{PageLimits, ReportPage, ReportQuery, REPORT_PAGE_SIZE};
use crate::api::request::{
    AttributionRequest, PageRequest, ReportingRequest, Request, MAX_PAGE_BYTES,
};
use crate::api::ApiError;
use crate::model::lookup::{Answer, LookupKind};
use crate::model::time::api_timestamp;

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
    /// Requests to the Reporting API, and its 429s (counted in `rate_limited` too).
    pub reporting_requests: AtomicU64,
    pub reporting_rate_limited: AtomicU64,
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
    /// The one request rate; the sync's reads go before look-ups.
    pace: Arc<Pace>,
    /// After a 429 every request waits until this instant, not only the one that was refused:
    /// the limit is shared, so hammering it from other tasks would only earn more 429s.
    cooldown: Arc<Mutex<Option<Instant>>>,
    /// What a page of attributed users holds while it is read; none when unset.
    budget: Option<MemoryBudget>,
    /// Cancelled to stop every request and every wait at once.
    halt: CancellationToken,
    /// The stream's deadline, if it has one: a `Retry-After` past it is not waited out.
    deadline: Option<Deadline>,
    pub stats: Arc<ApiStats>,
}

impl ApiClient {
    pub fn new(settings: ClientSettings) -> anyhow::Result<Self> {
        let mut key = HeaderValue::from_str(settings.api_key.expose_secret())
            .map_err(|_| anyhow::anyhow!("the API key holds characters a header cannot carry"))?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("linkrunner-key", key);
        let http = http::client(headers, settings.timeout)?;
        // Requests are spaced evenly: a burst of a whole second's quota would trip the server's
        // own per-second window.
        let period = Duration::from_secs_f64(1.0 / settings.rps);
        let quota = Quota::with_period(period)
            .ok_or_else(|| anyhow::anyhow!("--rps is too high"))?
            .allow_burst(NonZeroU32::MIN);
        Ok(ApiClient {
            http,
            settings: Arc::new(settings),
            pace: Arc::new(Pace::new(quota)),
            cooldown: Arc::new(Mutex::new(None)),
            budget: None,
            halt: CancellationToken::new(),
            deadline: None,
            stats: Arc::new(ApiStats::default()),
        })
    }

    /// This client, ending every request and wait with [`ApiError::Stopped`] once `halt` is
    /// cancelled: a signal must not wait out a backoff, a `Retry-After` or a slow body.
    pub fn with_halt(mut self, halt: CancellationToken) -> Self {
        self.halt = halt;
        self
    }

    /// This client, ending every request and wait with [`ApiError::Stopped`] once `deadline`
    /// passes (or the run is stopped, when the deadline was made from the run's token), and
    /// giving back at once a 429 whose `Retry-After` would outlast it.
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.halt = deadline.token().clone();
        self.deadline = Some(deadline);
        self
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
        self.get(PageRequest {
            url,
            list_key: "campaigns",
            limit,
            budget: None,
        })
        .await
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
        self.get(PageRequest {
            url,
            list_key: "users",
            limit,
            budget: self.budget.as_ref(),
        })
        .await
    }

    /// `GET /get-attribution-result` for one id. It takes only the request slots the sync's
    /// own reads leave.
    pub async fn attribution_result(
        &self,
        kind: LookupKind,
        value: &str,
    ) -> Result<Answer, ApiError> {
        let url = self.url(
            "get-attribution-result",
            &[(kind.as_str(), value.to_string())],
        );
        self.get(AttributionRequest { url }).await
    }

    /// One page of `GET /reporting/campaigns`, asked once: a 429, a server error or a lost
    /// connection comes back at once. The Reporting API allows a request a minute, so when to
    /// ask again is the caller's pace to decide, and a 429 never makes the sync's reads cool
    /// down.
    pub async fn reporting_page(&self, query: &ReportQuery) -> Result<ReportPage, ApiError> {
        let mut url = self.url("reporting", &query.params());
        url.path_segments_mut()
            .expect("base URL is http(s)")
            .push("campaigns");
        self.stats
            .reporting_requests
            .fetch_add(1, Ordering::Relaxed);
        // A page and its rows each fit the memory budget, and the body no more than any page.
        let limits = PageLimits {
            campaigns: REPORT_PAGE_SIZE as usize,
            bytes: query.memory.clamp(1, MAX_PAGE_BYTES),
        };
        let answer = self.get(ReportingRequest { url, limits }).await;
        if let Err(ApiError::RateLimited { .. }) = answer {
            self.stats
                .reporting_rate_limited
                .fetch_add(1, Ordering::Relaxed);
        }
        answer
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

    async fn get<R: Request>(&self, request: R) -> Result<R::Answer, ApiError> {
        tokio::select! {
            biased;
            () = self.halt.cancelled() => Err(ApiError::Stopped),
            answer = self.get_with_retries(&request) => answer,
        }
    }

    async fn get_with_retries<R: Request>(&self, request: &R) -> Result<R::Answer, ApiError> {
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.settings.retry_min_delay)
            .with_max_delay(self.settings.retry_max_delay)
            .with_max_times(self.settings.max_retries);
        (|| self.get_once(request))
            .retry(backoff)
            .when(|e| request.retried() && e.is_retryable() && !self.outlasts(e))
            .adjust(|e, next| next.map(|d| e.retry_after().map_or(d, |r| r.min(MAX_RETRY_AFTER))))
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

    /// Whether `e` asks for a wait past the stream's deadline: then it is not waited out.
    fn outlasts(&self, e: &ApiError) -> bool {
        match (&self.deadline, e.retry_after()) {
            (Some(deadline), Some(wait)) => deadline.outlasted_by(wait),
            _ => false,
        }
    }

    async fn get_once<R: Request>(&self, request: &R) -> Result<R::Answer, ApiError> {
        self.wait_turn(request.urgent()).await;
        // One time limit for the whole response, headers and body, so a server that trickles
        // bytes is cut however it spaces them; a wait on the budget does not count.
        let limit_time = self.settings.timeout;
        let until = Instant::now() + limit_time;
        let response = tokio::time::timeout_at(until, self.http.get(request.url().clone()).send())
            .await
            .map_err(|_| ApiError::timed_out(limit_time))?
            .map_err(ApiError::from_reqwest)?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(request.no_content());
        }
        if status != StatusCode::OK {
            return Err(self.refused(response, until).await);
        }
        let (body, hold) = self
            .read_body(response, request.budget(), request.max_body(), until)
            .await?;
        request.read(&body, hold)
    }

    /// Waits out the cooldown of a 429, if any, then the rate limit, ahead of spare requests
    /// when `urgent`; counts the request.
    async fn wait_turn(&self, urgent: bool) {
        let cooldown = *self.cooldown.lock().expect("not poisoned");
        if let Some(until) = cooldown {
            tokio::time::sleep_until(until).await;
        }
        if urgent {
            self.pace.urgent().await;
        } else {
            self.pace.spare().await;
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The error an answer other than 200 stands for, with what the start of its body says.
    async fn refused(&self, response: reqwest::Response, until: Instant) -> ApiError {
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let location = response.headers().get(reqwest::header::LOCATION).cloned();
        let body =
            tokio::time::timeout_at(until, http::read_prefix(response, http::ERROR_BODY_CAP))
                .await
                .unwrap_or_default();
        self.refusal(status, retry_after, location, &body)
    }

    /// Reads the body of a 200 by `until`, holding its share of `budget` if any; the wait for
    /// the budget moves `until` on by its own length.
    async fn read_body(
        &self,
        response: reqwest::Response,
        budget: Option<&MemoryBudget>,
        cap: usize,
        until: Instant,
    ) -> Result<(Vec<u8>, Hold), ApiError> {
        // A body of unknown length is held at the most it may be until it has arrived: taking
        // its share chunk by chunk could leave concurrent pages each holding part of the budget
        // and waiting for more.
        let most = response
            .content_length()
            .map_or(cap, |n| n.min(cap as u64) as usize);
        let waited = Instant::now();
        let mut hold = match budget {
            Some(budget) => budget.take(most * PER_BODY_BYTE).await,
            None => Hold::default(),
        };
        let until = until + waited.elapsed();
        let limit_time = self.settings.timeout;
        let body = tokio::time::timeout_at(until, http::read_capped(response, cap))
            .await
            .map_err(|_| ApiError::timed_out(limit_time))?
            .map_err(|e| match e {
                BodyError::TooLarge { cap } => ApiError::TooLarge { cap },
                BodyError::Http(e) => ApiError::from_reqwest(e),
            })?;
        hold.shrink_to(body.len() * PER_BODY_BYTE);
        Ok((body, hold))
    }

    /// The error an answer other than 200 stands for.
    fn refusal(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        location: Option<HeaderValue>,
        body: &[u8],
    ) -> ApiError {
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::Unauthorized {
                status: status.as_u16(),
            },
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::TOO_MANY_REQUESTS => {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                ApiError::RateLimited { retry_after }
            }
            s if s.is_server_error() => {
                self.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                ApiError::Server { status: s.as_u16() }
            }
            s if s.is_redirection() => self.redirected(s, location),
            s => ApiError::Rejected {
                status: s.as_u16(),
                message: error_message(body),
            },
        }
    }

    /// A redirect, refused: only the base URL's origin is sent the key.
    fn redirected(&self, status: StatusCode, location: Option<HeaderValue>) -> ApiError {
        let target = location
            .and_then(|l| {
                l.to_str()
                    .ok()
                    .and_then(|l| self.settings.base_url.join(l).ok())
            })
            .map_or_else(
                || "nowhere".to_owned(),
                |u| u.origin().ascii_serialization(),
            );
        ApiError::Rejected {
            status: status.as_u16(),
            message: format!(
                "a redirect to {target} was not followed: the key goes only to the base URL's origin"
            ),
        }
    }
}

/// Longest `Retry-After` a request waits out before asking again; a stream with a deadline
/// gives up at once on one that would outlast it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Longest wait a `Retry-After` is read as; the stream's own bounds then cut it shorter.
const MAX_RETRY_AFTER_READ: Duration = Duration::from_secs(366 * 86_400);

/// `Retry-After` in either form HTTP allows, read up to a year: seconds, or an HTTP date whose
/// wait is the time until it (none once it has passed).
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    retry_after_from(text.trim(), SystemTime::now())
}

/// The wait a `Retry-After` of `text` asks for at `now`.
fn retry_after_from(text: &str, now: SystemTime) -> Option<Duration> {
    let wait = match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => {
            Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER_READ.as_secs_f64()))
        }
        Ok(_) => return None,
        Err(_) => httpdate::parse_http_date(text)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(wait.min(MAX_RETRY_AFTER_READ))
}

/// The `msg` of an error body, or the start of the raw text; masked, escaped and short.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("msg")
                .and_then(|m| m.as_str())
                .map(|m| crate::output::secrets::clean(m, 200))
        })
        .unwrap_or_else(|| preview(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(text: &'static str) -> Option<Duration> {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(text));
        parse_retry_after(&h)
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(retry_after("86400"), Some(Duration::from_secs(86_400)));
        assert_eq!(retry_after("1e300"), Some(MAX_RETRY_AFTER_READ));
        for garbage in [
            "-1",
            "inf",
            "NaN",
            "soon",
            "",
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ] {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(garbage).unwrap());
            assert_eq!(parse_retry_after(&h), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_date_is_the_wait_until_it() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        let at = |text| retry_after_from(text, now);
        // 2015-10-21 07:28:00 UTC is 10 s after `now`, in each of the three date forms.
        for text in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(at(text), Some(Duration::from_secs(10)), "{text}");
        }
        assert_eq!(at("Wed, 21 Oct 2015 07:27:00 GMT"), Some(Duration::ZERO));
        assert_eq!(
            at("Fri, 21 Oct 2022 07:28:00 GMT"),
            Some(MAX_RETRY_AFTER_READ)
        );
    }

    #[test]
    fn retry_after_date_is_read_against_the_clock() {
        let in_secs = |secs: u64| {
            let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs));
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
            parse_retry_after(&h).expect("a date is read")
        };
        // A date has whole seconds: the wait is a little under the seconds asked.
        let wait = in_secs(30);
        assert!(
            (Duration::from_secs(28)..=Duration::from_secs(32)).contains(&wait),
            "{wait:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
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
