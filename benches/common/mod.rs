//! What both benchmarks share: `linkrunner-sync receive` as a child process.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

/// Starts the receiver on a port it picks, against `db_url` with the webhook key `key`, and
/// waits (at most a minute) until its log says where it listens: the child and the address.
pub async fn receiver(db_url: &str, key: &str, args: &[&OsStr]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"))
        .args(["receive", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("LINKRUNNER_WEBHOOK_KEY", key)
        .env("LINKRUNNER_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the receiver starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let listen = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(addr) = log["listen"].as_str() {
                    return addr.to_owned();
                }
            }
        }
        panic!("the receiver ended before it listened")
    })
    .await
    .expect("the receiver listens");
    // The rest of its log is not read; the pipe is kept drained so it never blocks.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, listen)
}
