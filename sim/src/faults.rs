//! The gate in front of every `/api/v1/*` route: counts the request, checks the key, then a
//! 429 storm and the rate limit, rolls for an injected 5xx and a slow answer, adds the latency,
//! and after the handler may spoil a 200 GET body (reset, truncated, HTML).

use crate::config::Faults;
use crate::hash::roll;
use crate::reply::ApiError;
use crate::state::{Simulator, State};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as Extract};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use futures::stream::{self, StreamExt};
use rand::Rng;
use std::time::{Duration, Instant, SystemTime};

const BAD_GATEWAY_PAGE: &str = "<html><head><title>502 Bad Gateway</title></head>\
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";

/// How a 200 body is spoiled after the handler ran.
enum Spoil {
    Reset,
    Truncate,
    Html,
}

/// Axum middleware over `/api/v1/*`.
pub(crate) async fn guard(Extract(sim): Extract<Simulator>, req: Request, next: Next) -> Response {
    let (rejection, delay) = sim.lock().admit(req.method(), req.uri(), req.headers());
    let rejected = rejection.is_some();
    tracing::debug!(method = %req.method(), path = req.uri().path(), rejected, "api request");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(response) = rejection {
        return response;
    }
    let is_get = req.method() == Method::GET;
    let response = next.run(req).await;
    if !is_get || response.status() != StatusCode::OK {
        return response;
    }
    let spoil = sim.lock().spoil();
    match spoil {
        Some(how) => spoiled(response, how).await,
        None => response,
    }
}

/// The spoiled answer: same status and headers, but the body is cut or aborted, or replaced.
async fn spoiled(response: Response, how: Spoil) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    };
    let half = first_half(&bytes);
    // Hyper sets the length of what is actually sent, or streams it chunked.
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = match how {
        Spoil::Html => return (StatusCode::OK, Html(BAD_GATEWAY_PAGE)).into_response(),
        Spoil::Truncate => Body::from(half),
        Spoil::Reset => reset_after(half),
    };
    Response::from_parts(parts, body)
}

/// Half the JSON text, backed off to a UTF-8 boundary: never a complete JSON value.
fn first_half(bytes: &Bytes) -> Bytes {
    let mut cut = bytes.len() / 2;
    while cut > 0 && bytes[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    bytes.slice(..cut)
}

/// A body that sends `half` and then fails as a reset connection.
fn reset_after(half: Bytes) -> Body {
    // The pause lets hyper flush the headers and first chunk before the error aborts the
    // connection, so the client sees a broken body rather than no answer.
    let abort = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset",
        ))
    };
    Body::from_stream(stream::once(async { Ok(half) }).chain(stream::once(abort)))
}

impl State {
    /// Decides whether a request gets through; also returns the delay to add before answering.
    fn admit(
        &mut self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> (Option<Response>, Duration) {
        let is_get = method == Method::GET;
        self.count(is_get, uri.path());
        let faults = self.config.faults.clone();
        if let Some(rejection) = self.reject(is_get, uri, headers, &faults) {
            return (Some(rejection), faults.latency);
        }
        if is_get && roll(&mut self.fault_rng, faults.slow_rate) {
            self.stats.slow += 1;
            return (None, faults.latency + faults.slow_delay);
        }
        (None, faults.latency)
    }

    fn count(&mut self, is_get: bool, path: &str) {
        self.stats.requests += 1;
        match path {
            "/api/v1/attributed-users" if is_get => self.stats.attributed_users_requests += 1,
            "/api/v1/campaigns" if is_get => self.stats.campaigns_requests += 1,
            "/api/v1/reporting/campaigns" if is_get => self.stats.reporting_requests += 1,
            "/api/v1/get-attribution-result" if is_get => {
                self.stats.attribution_result_requests += 1
            }
            _ => {}
        }
    }

    /// The answer instead of the handler's, checked in order: key, 429s, injected 5xx.
    fn reject(
        &mut self,
        is_get: bool,
        uri: &Uri,
        headers: &HeaderMap,
        faults: &Faults,
    ) -> Option<Response> {
        let path = uri.path();
        let key = headers.get("linkrunner-key").and_then(|k| k.to_str().ok());
        if key != Some(self.config.api_key.as_str()) {
            return Some(unauthorized(is_get, path, key.is_none()));
        }
        if self.rate_limited(faults) {
            self.stats.rate_limited += 1;
            return Some(too_many(faults));
        }
        if path == "/api/v1/attributed-users" && asks_for_any(uri, &faults.failing_campaigns) {
            self.stats.server_errors += 1;
            return Some(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
            ));
        }
        if is_get && roll(&mut self.fault_rng, faults.error_rate) {
            self.stats.server_errors += 1;
            return Some(self.server_error());
        }
        None
    }

    /// Inside a 429 storm (maybe one this request starts), or out of rate-limit tokens.
    fn rate_limited(&mut self, faults: &Faults) -> bool {
        let now = Instant::now();
        let mut storm = self.storm_until.is_some_and(|until| now < until);
        if !storm && roll(&mut self.fault_rng, faults.storm_rate) {
            self.stats.storms += 1;
            self.storm_until = Some(now + faults.storm_len);
            storm = true;
        }
        let limited = faults
            .rate_limit_rps
            .is_some_and(|rps| !storm && !self.bucket.take(rps, now));
        storm || limited
    }

    /// An injected 500, 502 (a proxy's HTML page) or 503.
    fn server_error(&mut self) -> Response {
        match self.fault_rng.random_range(0..3) {
            0 => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
            1 => (StatusCode::BAD_GATEWAY, Html(BAD_GATEWAY_PAGE)).into_response(),
            _ => error(StatusCode::SERVICE_UNAVAILABLE, "Internal server error"),
        }
    }

    /// One draw over the three body faults, only when one is on.
    fn spoil(&mut self) -> Option<Spoil> {
        let f = &self.config.faults;
        let rates = [f.reset_rate, f.truncate_rate, f.html_rate].map(|r| r.clamp(0.0, 1.0));
        if rates.iter().all(|&r| r == 0.0) {
            return None;
        }
        let x: f64 = self.fault_rng.random();
        let (reset, truncate) = (rates[0], rates[0] + rates[1]);
        let how = match x {
            x if x < reset => Spoil::Reset,
            x if x < truncate => Spoil::Truncate,
            x if x < truncate + rates[2] => Spoil::Html,
            _ => return None,
        };
        let counter = match how {
            Spoil::Reset => &mut self.stats.resets,
            Spoil::Truncate => &mut self.stats.truncated,
            Spoil::Html => &mut self.stats.html,
        };
        *counter += 1;
        Some(how)
    }
}

/// Whether the query names one of `campaigns` as its `display_id`.
fn asks_for_any(uri: &Uri, campaigns: &[String]) -> bool {
    let query = uri.query().unwrap_or_default();
    !campaigns.is_empty()
        && url::form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k == "display_id" && campaigns.iter().any(|c| *c == v))
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

/// 429, with a `Retry-After` of one second or, as an HTTP date, of one to two (a date has
/// whole seconds) when the faults ask for one.
fn too_many(faults: &Faults) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "Rate limit exceeded. Please try again later.",
    );
    let retry_after = if faults.retry_after_date {
        Some(httpdate::fmt_http_date(
            SystemTime::now() + Duration::from_secs(2),
        ))
    } else {
        faults.retry_after.then(|| "1".to_owned())
    };
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, value.parse().expect("a header value"));
    }
    response
}
