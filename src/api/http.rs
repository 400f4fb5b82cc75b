//! The one policy for every HTTP call the job makes, to the API or a Pushgateway: redirects are
//! followed only within the origin they start from (a custom header such as `linkrunner-key`
//! would otherwise travel to wherever a `Location` points), no `Referer`, a time limit on
//! connecting, and bodies read with a cap on their size.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::redirect;

/// Redirects followed within one origin.
const MAX_REDIRECTS: usize = 5;

/// Most of an error body kept: enough for its message.
pub const ERROR_BODY_CAP: usize = 64 << 10;

/// An HTTP client under the policy, sending `headers` with every request.
pub fn client(headers: HeaderMap, connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(concat!("linkrunner-sync/", env!("CARGO_PKG_VERSION")))
        .redirect(same_origin())
        .referer(false)
        .connect_timeout(connect_timeout)
        .build()
}

fn same_origin() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let from = attempt.previous().first().map(|u| u.origin());
        if attempt.previous().len() > MAX_REDIRECTS || from != Some(attempt.url().origin()) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// A body that went past its cap.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the response body is larger than {} MiB", .cap >> 20)]
    TooLarge { cap: usize },
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// Reads the whole body, failing as soon as it passes `cap` bytes: a declared length over the
/// cap is refused before any of it is read, and an undeclared one is counted as it arrives.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    let declared = response.content_length().map(|n| n as usize);
    if declared.is_some_and(|n| n > cap) {
        return Err(BodyError::TooLarge { cap });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of a body, at most `cap` bytes, for an error message; the rest is dropped unread.
pub async fn read_prefix(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == cap {
            break;
        }
    }
    body
}
