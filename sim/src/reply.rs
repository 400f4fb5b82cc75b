//! What the HTTP handlers answer: the API's JSON envelope, for success and for errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// What every handler returns.
pub(crate) type Reply = Result<Response, ApiError>;

/// An error answer: the envelope minus `data`, as the campaign-apis examples show.
pub(crate) struct ApiError(StatusCode, String);

impl ApiError {
    /// A 422: the query asks for something the endpoint does not serve.
    pub(crate) fn unprocessable(msg: String) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg)
    }

    pub(crate) fn new(code: StatusCode, msg: impl Into<String>) -> Self {
        ApiError(code, msg.into())
    }

    pub(crate) fn message(&self) -> &str {
        &self.1
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({ "msg": self.1, "status": self.0.as_u16() })),
        )
            .into_response()
    }
}

/// Shorthand for `Err(ApiError::new(code, msg))`.
pub(crate) fn fail<T>(code: StatusCode, msg: impl Into<String>) -> Result<T, ApiError> {
    Err(ApiError::new(code, msg))
}

/// The success envelope `{"msg","status","data"}`.
pub(crate) fn ok(code: StatusCode, msg: &str, data: Value) -> Reply {
    let body = json!({ "msg": msg, "status": code.as_u16(), "data": data });
    Ok((code, Json(body)).into_response())
}
