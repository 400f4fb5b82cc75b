//! `linkrunner-sync receive` as a process of its own, listening on a port it picks and names in
//! its log, and events posted to it as Linkrunner posts them.

use std::time::Duration;

use linkrunner_sync::receive::PATH;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// A running receiver; killed when dropped.
pub struct Receiver {
    pub child: tokio::process::Child,
    pub url: String,
    key: String,
}

/// Starts the receiver against `db_url` with the webhook key `key`, and waits (at most a
/// minute) until it says where it listens.
pub async fn start(db_url: &str, key: &str) -> Receiver {
    start_with(db_url, key, &[]).await
}

/// As [`start`], with more arguments.
pub async fn start_with(db_url: &str, key: &str, args: &[&str]) -> Receiver {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"))
        .args(["receive", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("LINKRUNNER_WEBHOOK_KEY", key)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let find = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(addr) = log["listen"].as_str() {
                return addr.to_owned();
            }
        }
        panic!("the receiver ended before it listened");
    };
    let addr = tokio::time::timeout(Duration::from_secs(60), find)
        .await
        .expect("the receiver listens within a minute");
    // The rest of its log is not read; the pipe is kept drained so it never blocks.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Receiver {
        child,
        url: format!("http://{addr}{PATH}"),
        key: key.to_owned(),
    }
}

impl Receiver {
    /// Posts `event` with the receiver's key; the answer's status (within 30 s).
    pub async fn post(&self, event: &Value) -> u16 {
        reqwest::Client::new()
            .post(&self.url)
            .header("content-type", "application/json")
            .header("linkrunner-key", &self.key)
            .body(event.to_string())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the receiver answers")
            .status()
            .as_u16()
    }

    /// Ends the receiver with SIGKILL and waits (at most a minute) until it is gone.
    pub async fn stop(mut self) {
        self.child.start_kill().unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the receiver ends")
            .unwrap();
    }
}
