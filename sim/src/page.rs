//! The body of a `GET /attributed-users` page, spliced together from the rows' served texts, so
//! a page costs a copy of its bytes instead of building and writing out a tree of every row.

use crate::reply::Reply;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};

/// Where the rows go in the envelope's text. Inside a JSON string every quote is escaped, so
/// this can only be the `users` key itself.
const EMPTY_USERS: &str = r#""users":[]"#;

/// The success envelope exactly as [`crate::reply::ok`] writes it with `users` holding `rows`, each
/// already compact JSON text. The envelope is written by serde_json like any other answer, so
/// its key order follows serde_json's, whatever that is.
pub(crate) fn users_reply(msg: &str, rows: &[&str], pagination: Value) -> Reply {
    let data = json!({ "total_users": rows.len(), "users": [], "pagination": pagination });
    let envelope = json!({ "msg": msg, "status": StatusCode::OK.as_u16(), "data": data });
    let body = splice(&envelope.to_string(), rows);
    let json = HeaderValue::from_static("application/json");
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, json)], body).into_response())
}

/// `envelope` with `rows` inside the array of its `users` key.
fn splice(envelope: &str, rows: &[&str]) -> String {
    let key = envelope.find(EMPTY_USERS).expect("the envelope has users");
    let (head, tail) = envelope.split_at(key + EMPTY_USERS.len() - 1);
    let size = head.len() + tail.len() + rows.iter().map(|r| r.len() + 1).sum::<usize>();
    let mut body = String::with_capacity(size);
    body.push_str(head);
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(row);
    }
    body.push_str(tail);
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ok;
    use axum::response::Response;

    async fn bytes(r: Reply) -> (axum::http::HeaderMap, axum::body::Bytes) {
        let r: Response = r.ok().unwrap();
        let headers = r.headers().clone();
        (
            headers,
            axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap(),
        )
    }

    #[tokio::test]
    async fn spliced_page_equals_the_written_out_tree() {
        let rows = [
            json!({ "a": 1, "users": [], "s": "\"users\":[]" }),
            json!({ "b": null }),
        ];
        let texts: Vec<String> = rows.iter().map(Value::to_string).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let pagination = json!({ "total": 2, "pages": 1, "page": 1, "limit": 50 });
        let msg = "\"users\":[] in a message";
        for n in 0..=2 {
            let spliced = users_reply(msg, &texts[..n], pagination.clone());
            let data = json!({ "total_users": n, "users": rows[..n], "pagination": pagination });
            let tree = ok(StatusCode::OK, msg, data);
            assert_eq!(bytes(spliced).await, bytes(tree).await);
        }
    }
}
