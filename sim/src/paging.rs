//! The `page` and `limit` of the paged read APIs.

use crate::reply::ApiError;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Validated `page` and `limit`.
pub(crate) struct Paging {
    pub(crate) page: usize,
    pub(crate) limit: usize,
}

/// `page`: 1 when absent, else a positive integer.
fn parse_page(page: Option<&String>) -> Result<usize, ApiError> {
    match page.map(|p| (p, p.trim().parse::<usize>())) {
        None => Ok(1),
        Some((_, Ok(n))) if n >= 1 => Ok(n),
        Some((p, _)) => Err(ApiError::unprocessable(format!(
            "Invalid page number '{p}'. Page must be a positive integer."
        ))),
    }
}

/// `limit`: `default` when absent, else 1 to `max`.
fn parse_limit(limit: Option<&String>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit.map(|l| (l, l.trim().parse::<i64>())) {
        None => Ok(default),
        Some((_, Ok(n))) if n > max as i64 => Err(ApiError::unprocessable(format!(
            "Limit {n} exceeds maximum allowed value of {max}."
        ))),
        Some((_, Ok(n))) if n >= 1 => Ok(n as usize),
        Some((l, _)) => Err(ApiError::unprocessable(format!(
            "Invalid limit '{l}'. Limit must be between 1 and {max}."
        ))),
    }
}

impl Paging {
    /// Reads `page`, then `limit` (at most 1000); the first bad one is the error.
    pub(crate) fn parse(
        q: &HashMap<String, String>,
        default_limit: usize,
    ) -> Result<Self, ApiError> {
        Paging::parse_capped(q, default_limit, 1000)
    }

    /// [`Paging::parse`] with `limit` at most `max`.
    pub(crate) fn parse_capped(
        q: &HashMap<String, String>,
        default_limit: usize,
        max: usize,
    ) -> Result<Self, ApiError> {
        let page = parse_page(q.get("page"))?;
        let limit = parse_limit(q.get("limit"), default_limit, max)?;
        Ok(Paging { page, limit })
    }

    /// How many items come before the page.
    pub(crate) fn skip(&self) -> usize {
        (self.page - 1).saturating_mul(self.limit)
    }

    /// The `pagination` object for `total` items.
    pub(crate) fn pagination(&self, total: usize) -> Value {
        let pages = total.div_ceil(self.limit);
        json!({ "total": total, "pages": pages, "page": self.page, "limit": self.limit })
    }

    /// The page's items and the `pagination` object; a page past the end is empty.
    pub(crate) fn apply<T>(&self, items: Vec<T>) -> (Vec<T>, Value) {
        let pagination = self.pagination(items.len());
        let page = items
            .into_iter()
            .skip(self.skip())
            .take(self.limit)
            .collect();
        (page, pagination)
    }
}
