//! A loopback server that impersonates the API, a Pushgateway or a redirect target, and answers
//! each request however a test tells it to: bad bytes, lies in `pagination`, bodies that never
//! end, answers that never come.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// A query parameter, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let url = url::Url::parse(&format!("http://h{}", self.target)).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How to answer.
pub enum Reply {
    /// A status and a body, with its `Content-Length`.
    Body {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Headers, then chunks of `chunk` for ever.
    Endless { chunk: Vec<u8> },
    /// Accepts the request and never answers.
    Hang,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Body {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::Body {
            status,
            headers: vec![("location".into(), location.into())],
            body: Vec::new(),
        }
    }
}

/// The envelope of a list page, around items given as JSON text.
pub fn page(list_key: &str, items: &[String], total: u64, pages: u64) -> Vec<u8> {
    format!(
        r#"{{"msg":"ok","status":200,"data":{{"{list_key}":[{}],"pagination":{{"total":{total},"pages":{pages},"page":1,"limit":1000}}}}}}"#,
        items.join(",")
    )
    .into_bytes()
}

/// As [`page`], around items given as bytes, which need not be UTF-8.
pub fn page_bytes(list_key: &str, items: &[Vec<u8>], total: u64, pages: u64) -> Vec<u8> {
    let mut body = format!(r#"{{"msg":"ok","status":200,"data":{{"{list_key}":["#).into_bytes();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(
        format!(r#"],"pagination":{{"total":{total},"pages":{pages},"page":1,"limit":1000}}}}}}"#)
            .as_bytes(),
    );
    body
}

/// A campaign as the list sends it.
pub fn campaign(display_id: &str, name: &str) -> String {
    serde_json::json!({
        "display_id": display_id,
        "name": name,
        "created_at": "2026-11-01T00:00:00.000Z",
        "update_at": "2026-11-01T00:00:00.000Z",
        "active": true,
        "attributed_users": 1,
        "store_listings": [],
    })
    .to_string()
}

/// An attributed user of `display_id`, at `attributed_at`.
pub fn user(display_id: &str, id: &str, attributed_at: &str) -> String {
    serde_json::json!({
        "campaign_display_id": display_id,
        "attributed_at": attributed_at,
        "user_data": {"id": id, "name": "Ada"},
    })
    .to_string()
}

pub type Respond = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running server; requests it received are kept in order.
pub struct Hostile {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Hostile {
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

pub async fn serve(respond: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let respond: Arc<Respond> = Arc::new(respond);
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(connection(stream, respond.clone(), seen.clone()));
        }
    });
    Hostile { url, requests }
}

async fn connection(mut stream: TcpStream, respond: Arc<Respond>, seen: Arc<Mutex<Vec<Request>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        seen.lock().unwrap().push(request.clone());
        let reply = respond(&request);
        let written = match reply {
            Reply::Body {
                status,
                headers,
                body,
            } => {
                let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let mut out = head.into_bytes();
                out.extend_from_slice(&body);
                stream.write_all(&out).await
            }
            Reply::Endless { chunk } => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                while stream.write_all(&framed).await.is_ok() {}
                return;
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        };
        if written.is_err() {
            return;
        }
    }
}

/// One HTTP/1.1 request off the connection; `buf` keeps what was read past it.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}
