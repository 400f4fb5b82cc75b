//! `cargo bench --bench receive`: the webhook receiver's sustained events per second into
//! Postgres and its answer latency (p50, p99), then the same with Postgres unreachable (every
//! delivery spooled), and the rate its spool drains at once Postgres is back. Printed as a
//! Markdown table.
//!
//! The release binary runs as a child process against a fresh database, reached through a TCP
//! proxy this bench cuts for the outage; senders in this process post distinct signup events
//! over kept-alive connections. Every figure is checked: each answered event is in the table
//! once at the end. `cargo bench --bench receive -- --seconds 5` shortens each phase.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

mod common;
#[path = "../tests/it/common/proxy.rs"]
mod proxy;

use proxy::Proxy;

const DB: &str = "linkrunner_bench_receive";
const KEY: &str = "bench-webhook-key";
/// Senders posting at once, each on a kept-alive connection.
const SENDERS: usize = 32;

fn admin_url() -> String {
    std::env::var("BENCH_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn event(user: &str) -> String {
    serde_json::json!({
        "event_type": "signup", "user_id": user, "campaign_id": "OgWmhiSXhG",
        "campaign_name": "TOF - Free trial", "network_name": "META", "ad_channel": "META",
        "attributed_on": "2026-03-25T15:52:00.007Z", "installed_at": "2026-03-25T15:50:29.742Z",
        "store_click_at": null, "link": "https://dl.linkrunner.io/?c=OgWmhiSXhG",
        "app_version": "1.0.0", "gaid": "5faa2433-d7e1-4a8e-9a1c-a5880c26ab5c", "idfa": null,
        "name": "Test User", "phone": "9876543210", "email": "test@example.com",
        "additional_data": {"id": user, "referral_code": "ABC123", "device_data": {}},
        "meta_campaign_details": null, "google_campaign_details": null
    })
    .to_string()
}

/// What one phase's senders got.
#[derive(Default)]
struct Phase {
    acked: u64,
    refused: u64,
    latencies: Vec<Duration>,
    seconds: f64,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.seconds
    }

    fn percentile(&mut self, p: f64) -> f64 {
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.latencies
            .get(i)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Posts distinct events from [`SENDERS`] senders for `seconds`; user ids start with `tag`.
async fn load(url: &str, tag: &str, seconds: f64) -> Phase {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SENDERS)
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (client, url, tag) = (client.clone(), url.to_owned(), tag.to_owned());
            tokio::spawn(async move {
                let mut phase = Phase::default();
                let mut i = 0;
                while Instant::now() < until {
                    let body = event(&format!("{tag}-{s}-{i}"));
                    i += 1;
                    let sent = Instant::now();
                    let answer = client
                        .post(&url)
                        .header("linkrunner-key", KEY)
                        .header("content-type", "application/json")
                        .body(body)
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    phase.latencies.push(sent.elapsed());
                    match answer {
                        Ok(r) if r.status() == 200 => phase.acked += 1,
                        _ => phase.refused += 1,
                    }
                }
                phase
            })
        })
        .collect();
    let mut all = Phase::default();
    for t in tasks {
        let p = t.await.unwrap();
        all.acked += p.acked;
        all.refused += p.refused;
        all.latencies.extend(p.latencies);
    }
    all.seconds = started.elapsed().as_secs_f64();
    all
}

async fn stored(admin: &str) -> i64 {
    let url = admin
        .rsplit_once('/')
        .map(|(b, _)| format!("{b}/{DB}"))
        .unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM linkrunner.webhook_events")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn row(name: &str, phase: &mut Phase) {
    let (p50, p99) = (phase.percentile(0.5), phase.percentile(0.99));
    println!(
        "| {name} | {:.0} | {} | {} | {:.0} | {p50:.1} | {p99:.1} |",
        phase.seconds,
        phase.acked,
        phase.refused,
        phase.rate()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(20.0);
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("Postgres answers (scripts/test starts it)");
    conn.execute(format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)").as_str())
        .await
        .unwrap();
    conn.execute(format!("CREATE DATABASE {DB}").as_str())
        .await
        .unwrap();
    let url = url::Url::parse(&admin).unwrap();
    let target: SocketAddr = format!(
        "{}:{}",
        match url.host_str() {
            Some("localhost") | None => "127.0.0.1",
            Some(h) => h,
        },
        url.port().unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let proxy = Proxy::start(target).await;
    let mut through = url.clone();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(proxy.addr.port())).unwrap();
    through.set_path(DB);
    let spool = tempfile::tempdir().unwrap();
    let (mut child, listen) = common::receiver(
        through.as_str(),
        KEY,
        &[OsStr::new("--spool-dir"), spool.path().as_os_str()],
    )
    .await;
    let endpoint = format!("http://{listen}/webhooks/linkrunner");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "linkrunner-sync receive benchmark: {cores} cores, {SENDERS} senders, {seconds} s a phase\n"
    );
    println!("| phase | s | answered 200 | refused | events/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    // A short warm-up: connections made, the table's first pages allocated.
    load(&endpoint, "warm", 2.0).await;
    let mut up = load(&endpoint, "up", seconds).await;
    row("Postgres up", &mut up);
    proxy.cut();
    let mut down = load(&endpoint, "down", seconds).await;
    row("Postgres unreachable (spooled)", &mut down);
    let before = stored(&admin).await;
    proxy.restore();
    let drain_started = Instant::now();
    let answered = before as u64 + down.acked;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n = stored(&admin).await as u64;
        if n >= answered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spool did not drain: {n} of {answered}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain = drain_started.elapsed().as_secs_f64();
    println!(
        "\nDrained after the outage: {} events in {drain:.1} s, {:.0} events/s.",
        down.acked,
        down.acked as f64 / drain
    );
    let total = stored(&admin).await;
    println!(
        "Stored: {total} events, every one answered 200 (checked: {}).",
        if total as u64 == answered {
            "yes"
        } else {
            "NO"
        }
    );
    assert_eq!(total as u64, answered, "each answered event stored once");
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
