//! The gate in front of every `/api/v1/*` route: counts the request, checks the key, then the
//! rate limit, then rolls for an injected 5xx, and adds the configured latency.

use super::{ApiError, Simulator, State};
use axum::extract::{Request, State as Extract};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use rand::Rng;
use std::time::{Duration, Instant};

const BAD_GATEWAY_PAGE: &str = "<html><head><title>502 Bad Gateway</title></head>\
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";

/// One global token bucket: `rps` tokens a second, holding at most `max(1, rps)`.
#[derive(Default)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// Takes a token if one is there; the first call finds the bucket full.
    pub(crate) fn take(&mut self, rps: f64, now: Instant) -> bool {
        let capacity = rps.max(1.0);
        let refill = |l: Instant| self.tokens + now.duration_since(l).as_secs_f64() * rps;
        let tokens = self.last.map_or(capacity, refill).min(capacity);
        self.last = Some(now);
        let granted = tokens >= 1.0;
        self.tokens = if granted { tokens - 1.0 } else { tokens };
        granted
    }
}

/// Axum middleware over `/api/v1/*`.
pub(crate) async fn guard(Extract(sim): Extract<Simulator>, req: Request, next: Next) -> Response {
    let (rejection, latency) = sim
        .lock()
        .admit(req.method(), req.uri().path(), req.headers());
    let rejected = rejection.is_some();
    tracing::debug!(method = %req.method(), path = req.uri().path(), rejected, "api request");
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match rejection {
        Some(response) => response,
        None => next.run(req).await,
    }
}

impl State {
    /// Decides whether a request gets through; also returns the delay to add before answering.
    fn admit(
        &mut self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> (Option<Response>, Duration) {
        self.stats.requests += 1;
        let is_get = method == Method::GET;
        match path {
            "/api/v1/attributed-users" if is_get => self.stats.attributed_users_requests += 1,
            "/api/v1/campaigns" if is_get => self.stats.campaigns_requests += 1,
            _ => {}
        }
        let faults = self.config.faults.clone();
        let key = headers.get("linkrunner-key").and_then(|k| k.to_str().ok());
        if key != Some(self.config.api_key.as_str()) {
            return (
                Some(unauthorized(is_get, path, key.is_none())),
                faults.latency,
            );
        }
        if let Some(rps) = faults.rate_limit_rps {
            if !self.bucket.take(rps, Instant::now()) {
                self.stats.rate_limited += 1;
                return (Some(too_many(faults.retry_after)), faults.latency);
            }
        }
        // Only roll when on, so turning errors on and off does not disturb the shift sequence.
        if is_get
            && faults.error_rate > 0.0
            && self.fault_rng.random_bool(faults.error_rate.min(1.0))
        {
            self.stats.server_errors += 1;
            let response = match self.fault_rng.random_range(0..3) {
                0 => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
                1 => (StatusCode::BAD_GATEWAY, Html(BAD_GATEWAY_PAGE)).into_response(),
                _ => error(StatusCode::SERVICE_UNAVAILABLE, "Internal server error"),
            };
            return (Some(response), faults.latency);
        }
        (None, faults.latency)
    }
}

/// 401 with the wording of the endpoint's own docs: read pages differ from the campaign page.
fn unauthorized(is_get: bool, path: &str, missing: bool) -> Response {
    let msg = match (is_get, missing) {
        (true, _) if path == "/api/v1/attributed-users" => "Authentication failed.",
        (true, _) => "Unauthorized access.",
        (false, true) => "Server key missing!",
        (false, false) => "Server key invalid!",
    };
    error(StatusCode::UNAUTHORIZED, msg)
}

fn error(code: StatusCode, msg: &str) -> Response {
    ApiError::new(code, msg).into_response()
}

fn too_many(retry_after: bool) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "Rate limit exceeded. Please try again later.",
    );
    if retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().unwrap());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_holds_one_second_and_refills() {
        let mut bucket = TokenBucket::default();
        let t0 = Instant::now();
        assert_eq!((0..8).filter(|_| bucket.take(5.0, t0)).count(), 5);
        assert!(!bucket.take(5.0, t0 + Duration::from_millis(100)));
        assert!(bucket.take(5.0, t0 + Duration::from_millis(250)));
        assert_eq!(
            (0..9)
                .filter(|_| bucket.take(5.0, t0 + Duration::from_secs(10)))
                .count(),
            5
        );
    }

    #[test]
    fn slow_limits_still_allow_one_request() {
        let mut bucket = TokenBucket::default();
        let t0 = Instant::now();
        assert!(bucket.take(0.5, t0));
        assert!(!bucket.take(0.5, t0 + Duration::from_secs(1)));
        assert!(bucket.take(0.5, t0 + Duration::from_secs(2)));
    }
}
