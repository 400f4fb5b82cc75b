//! The job against servers that break the contract on purpose: each test is one way an API, a
//! Pushgateway or the machine can turn hostile, and the promise the job keeps regardless.

use crate::common;

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::hostile::{self, Reply, Request};
use crate::common::process::run_measured;
use crate::common::{count, database_url, output, sync_command};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const BIN: &str = env!("CARGO_BIN_EXE_linkrunner-sync");

/// A sync of everything since the hostile campaigns' creation.
fn sync(db: &PgConnectOptions, api: &str, key: &str) -> Command {
    let mut cmd = sync_command(&database_url(db), api, key);
    cmd.args(["--since", "2026-11-01T00:00:00Z", "--max-retries", "2"]);
    cmd
}

/// Peak RSS that only memory growing without bound reaches (a tenfold margin over the job's
/// measured peaks); the peaks themselves are measured by `cargo bench`.
const UNBOUNDED_KIB: u64 = 1 << 20;

/// The child's exit status once it ends within `limit`; killed and None when it does not.
async fn wait_within(mut child: Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn sigterm(child: &Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// Waits until `done` holds, for at most `limit`.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) {
    let done = &mut done;
    common::wait_for("the awaited condition", limit, || {
        let now = done();
        async move { now.then_some(()) }
    })
    .await
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn ledger(pool: &PgPool) -> Vec<(String, Option<String>, String)> {
    sqlx::query_as(
        "SELECT outcome, error, settings::text FROM linkrunner.sync_runs ORDER BY started_at",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A server with one campaign `c1` holding the given user items in one page.
async fn api_with_users(users: Vec<String>) -> hostile::Hostile {
    hostile::serve(move |req| match req.path() {
        "/campaigns" => Reply::json(
            200,
            hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1),
        ),
        "/attributed-users" => {
            Reply::json(200, hostile::page("users", &users, users.len() as u64, 1))
        }
        _ => Reply::json(404, r#"{"msg":"Resource not found."}"#),
    })
    .await
}

#[sqlx::test]
async fn the_hostile_server_serves_a_plain_sync(_: PgPoolOptions, db: PgConnectOptions) {
    let api = api_with_users(vec![hostile::user("c1", "u1", "2026-11-02T10:00:00.000Z")]).await;
    let out = output(sync(&db, &api.url, "hostile-key")).await;
    assert!(out.status.success(), "{out:?}");
    let pool = PgPoolOptions::new().connect_with(db).await.unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.attributed_users").await,
        1
    );
    assert!(api
        .requests()
        .iter()
        .all(|r| r.header("linkrunner-key") == Some("hostile-key")));
}

/// A server with campaign `c1` whose users are `n` rows made by `row`, paged honestly by the
/// `page` and `limit` asked for.
async fn api_paging(
    n: usize,
    row: impl Fn(usize) -> String + Send + Sync + 'static,
) -> hostile::Hostile {
    hostile::serve(move |req| match req.path() {
        "/campaigns" => Reply::json(
            200,
            hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1),
        ),
        "/attributed-users" => {
            let limit: usize = req
                .query("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(1000);
            let page: usize = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let rows: Vec<String> = ((page - 1) * limit..(page * limit).min(n))
                .map(&row)
                .collect();
            Reply::json(
                200,
                hostile::page("users", &rows, n as u64, n.div_ceil(limit) as u64),
            )
        }
        _ => Reply::json(404, r#"{"msg":"Resource not found."}"#),
    })
    .await
}

/// A row at second `i` of 2 November.
fn nth_time(i: usize) -> String {
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z").unwrap()
        + chrono::Duration::seconds(i as i64 % 80_000);
    t.with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[sqlx::test]
async fn a_pushgateway_that_never_answers_neither_hangs_the_run_nor_holds_the_lock(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let api = api_with_users(vec![hostile::user("c1", "u1", "2026-11-02T10:00:00.000Z")]).await;
    let gateway = hostile::serve(|_| Reply::Hang).await;
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();

    // Left alone, the push gives up within its time limit, and the lock is free before it.
    let mut cmd = sync(&db, &api.url, "hostile-key");
    cmd.args(["--pushgateway", &gateway.url]);
    let first = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), || !gateway.requests().is_empty()).await;
    let second = output(sync(&db, &api.url, "hostile-key")).await;
    assert_eq!(
        second.status.code(),
        Some(0),
        "the lock is held: {}",
        text(&second)
    );
    // A Pushgateway that never answers keeps the run no longer than its push time: the
    // process ends (a hang guard, far past that time).
    let status = wait_within(first, Duration::from_secs(120)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));

    // A signal cuts the push short at once.
    let mut cmd = sync(&db, &api.url, "hostile-key");
    cmd.args(["--pushgateway", &gateway.url]);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), || gateway.requests().len() == 2).await;
    sigterm(&child);
    let status = wait_within(child, Duration::from_secs(3)).await;
    assert!(status.is_some(), "still running 3 s after SIGTERM");
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let runs = ledger(&pool).await;
    assert!(runs.iter().all(|r| r.0 == "success"), "{runs:?}");
}

#[sqlx::test]
async fn the_key_never_follows_a_redirect_to_another_origin(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let elsewhere =
        hostile::serve(|_| Reply::json(200, hostile::page("campaigns", &[], 0, 0))).await;
    for status in [302, 307] {
        let target = format!("{}campaigns?filter=ALL", elsewhere.url);
        let api = hostile::serve(move |_| Reply::redirect(status, &target)).await;
        let out = output(sync(&db, &api.url, "redirect-canary-key")).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("redirect"), "{}", text(&out));
    }
    for req in elsewhere.requests() {
        assert_eq!(
            req.header("linkrunner-key"),
            None,
            "the key travelled: {req:?}"
        );
        assert_eq!(req.header("referer"), None, "{req:?}");
    }
}

#[sqlx::test]
async fn the_key_is_masked_in_the_ledger_status_and_json_logs(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    // A key with the characters JSON escapes, echoed by an error body and straddling the cut
    // of an error preview.
    let key = r#"ke"y\canary-4d2f8a91"#;
    let echoed = format!(
        r#"{{"msg":"bad key {} rejected"}}"#,
        key.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let html = format!("<html>{}{key}</html>", "x".repeat(110));
    for body in [echoed.into_bytes(), html.into_bytes()] {
        let status = if body.starts_with(b"{") { 400 } else { 200 };
        let api = hostile::serve(move |_| Reply::json(status, body.clone())).await;
        let mut cmd = sync(&db, &api.url, key);
        cmd.args(["--log-format", "json"]).env("RUST_LOG", "debug");
        let out = output(cmd).await;
        assert_ne!(out.status.code(), Some(0));
        let all = text(&out);
        assert!(!all.contains("canary-4d2f"), "{all}");
        assert!(!all.contains(r#"ke\"y"#) && !all.contains("ke\"y"), "{all}");
    }
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    let runs = ledger(&pool).await;
    assert_eq!(runs.len(), 2);
    for (_, error, settings) in &runs {
        let error = error.as_deref().unwrap_or_default();
        assert!(
            !error.contains("canary-4d2f") && !error.contains("ke\"y"),
            "{error}"
        );
        assert!(!settings.contains("canary-4d2f"), "{settings}");
    }
    for format in ["text", "json"] {
        let mut status = Command::new(BIN);
        status
            .args(["status", "--format", format])
            .env("DATABASE_URL", database_url(&db))
            .env_remove("LINKRUNNER_API_KEY");
        let out = output(status).await;
        assert!(!text(&out).contains("canary-4d2f"), "{}", text(&out));
    }
}

#[sqlx::test]
async fn a_base_url_holding_the_key_is_refused_before_anything_is_stored(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let api = api_with_users(Vec::new()).await;
    let key = "path-canary-7c1e0b";
    for base in [format!("{}{key}/", api.url), format!("{}#{key}", api.url)] {
        let out = output(sync(&db, &base, key)).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(!text(&out).contains(key), "{}", text(&out));
    }
    assert!(api.requests().is_empty());
    let pool = PgPoolOptions::new().connect_with(db).await.unwrap();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'linkrunner' AND tablename = 'sync_runs'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    if stored > 0 {
        assert!(ledger(&pool).await.is_empty());
    }
}

#[sqlx::test]
async fn a_page_of_a_million_rows_or_an_endless_body_stays_within_bounded_memory(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let row = hostile::user("c1", "u-000000", "2026-11-02T10:00:00.000Z");
    let million: Arc<Vec<u8>> = Arc::new(hostile::page("users", &vec![row; 1_000_000], 1, 1));
    let tiny: Arc<Vec<u8>> = Arc::new(hostile::page(
        "users",
        &vec!["{}".to_string(); 1_000_000],
        1,
        1,
    ));
    let bodies: [Box<dyn Fn() -> Reply + Send + Sync>; 3] = [
        Box::new(move || Reply::json(200, million.to_vec())),
        Box::new(move || Reply::json(200, tiny.to_vec())),
        Box::new(|| Reply::Endless {
            chunk: br#"{"attributed_at":"2026-11-02T10:00:00.000Z"},"#.repeat(1000),
        }),
    ];
    for body in bodies {
        let api = hostile::serve(move |req: &Request| match req.path() {
            "/campaigns" => Reply::json(
                200,
                hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1),
            ),
            _ => body(),
        })
        .await;
        let (out, peak_kib) = tokio::task::spawn_blocking({
            let cmd = sync(&db, &api.url, "memory-key");
            move || run_measured(cmd)
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        eprintln!("peak RSS {} MiB", peak_kib / 1024);
        // A guard against growth without end, which such bodies would bring in seconds over
        // loopback; the bound itself is the benchmark's to measure.
        assert!(
            peak_kib < UNBOUNDED_KIB,
            "peak {peak_kib} KiB: {}",
            text(&out)
        );
    }
}

#[sqlx::test]
async fn rows_too_rich_for_a_full_page_are_read_in_smaller_pages(pool: PgPool) {
    // 1,000 rows of 24 KB each: 24 MB in one page, past the cap; every one of them is stored.
    let pad = "p".repeat(24_000);
    let api = api_paging(1000, move |i| {
        serde_json::json!({
            "campaign_display_id": "c1",
            "attributed_at": nth_time(i),
            "user_data": {"id": format!("u{i}"), "note": pad},
        })
        .to_string()
    })
    .await;
    let db = pool.connect_options();
    let out = output(sync(&db, &api.url, "rich-key")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.attributed_users").await,
        1000
    );
    let limits: Vec<String> = api
        .requests()
        .iter()
        .filter_map(|r| r.query("limit"))
        .collect();
    assert!(limits.contains(&"500".to_string()), "{limits:?}");
}

#[sqlx::test]
async fn a_nul_in_an_error_body_still_finishes_the_ledger(pool: PgPool) {
    let api = hostile::serve(|_| Reply::json(200, b"oops\0binary".to_vec())).await;
    let out = output(sync(&pool.connect_options(), &api.url, "nul-key")).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let runs = ledger(&pool).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "failed", "{runs:?}");
    assert!(
        runs[0].1.as_deref().unwrap_or_default().contains("oops"),
        "{runs:?}"
    );
}

#[sqlx::test]
async fn a_signal_cuts_short_every_wait(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    // A list that fails for ever, with long waits asked for; then a range whose pages never
    // end short.
    let failing = hostile::serve(|_| Reply::Body {
        status: 429,
        headers: vec![("retry-after".into(), "300".into())],
        body: Vec::new(),
    })
    .await;
    let endless = Arc::new(AtomicUsize::new(0));
    let seen = endless.clone();
    let paging = hostile::serve(move |req| match req.path() {
        "/campaigns" => Reply::json(
            200,
            hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1),
        ),
        _ => {
            seen.fetch_add(1, Ordering::Relaxed);
            // Full pages, a total that keeps the range honest-looking, slow answers.
            std::thread::sleep(Duration::from_millis(50));
            let rows: Vec<String> = (0..1000)
                .map(|i| hostile::user("c1", &format!("u{i}"), &nth_time(i)))
                .collect();
            Reply::json(200, hostile::page("users", &rows, 9_000_000, 9_000))
        }
    })
    .await;
    for (api, started) in [(&failing, 1), (&paging, 3)] {
        let mut cmd = common::bare_sync_command(&database_url(&db), &api.url, "signal-key");
        cmd.args([
            "--since",
            "2026-11-01T00:00:00Z",
            "--max-retries",
            "8",
            "--no-progress",
            "--rps",
            "2000",
            "--retry-delay",
            "60s",
        ]);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(20), || api.requests().len() >= started).await;
        sigterm(&child);
        let status = wait_within(child, Duration::from_secs(3)).await;
        assert!(status.is_some(), "still running 3 s after SIGTERM");
        assert_eq!(status.and_then(|s| s.code()), Some(1));
    }
    let runs = ledger(&pool).await;
    assert!(runs.iter().all(|r| r.0 == "interrupted"), "{runs:?}");
}

#[sqlx::test]
async fn pagination_without_end_is_refused(pool: PgPool) {
    let api = hostile::serve(|req| match req.path() {
        "/campaigns" => Reply::json(
            200,
            hostile::page("campaigns", &[hostile::campaign("c1", "One")], 1, 1),
        ),
        _ => {
            let rows: Vec<String> = (0..1000)
                .map(|i| hostile::user("c1", &format!("u{i}"), &nth_time(i)))
                .collect();
            Reply::json(
                200,
                hostile::page("users", &rows, 1_000_000_000_000, 1_000_000_000),
            )
        }
    })
    .await;
    let child = sync(&pool.connect_options(), &api.url, "pages-key")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_within(child, Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(1), "paged on and on");
    assert!(
        api.requests().len() < 20,
        "{} requests",
        api.requests().len()
    );
    let runs = ledger(&pool).await;
    assert!(
        runs[0].1.as_deref().unwrap_or_default().contains("pages"),
        "{runs:?}"
    );
}

#[sqlx::test]
async fn a_certificate_that_fails_verification_is_named_in_the_error(pool: PgPool) {
    // A TLS server with a self-signed certificate, as a man in the middle would present.
    let dir = std::env::temp_dir().join(format!("linkrunner-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command (scripts/test installs it)");
    assert!(made.status.success(), "{made:?}");
    let port = common::daemons::free_port();
    let server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let mut cmd = common::bare_sync_command(
        &database_url(&pool.connect_options()),
        &format!("https://localhost:{port}/"),
        "tls-key",
    );
    cmd.args(["--max-retries", "0", "--no-progress"]);
    let out = output(cmd).await;
    let _ = wait_within(server, Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("certificate"), "{}", text(&out));
}

#[sqlx::test]
async fn a_key_echoed_into_a_rejected_row_is_masked_there(pool: PgPool) {
    let key = "row-echo-canary-5b3e";
    let api = api_with_users(vec![
        format!(
            r#"{{"campaign_display_id":"c1","attributed_at":"{key}","user_data":{{"id":"u1"}}}}"#
        ),
        hostile::user("c1", "u2", "2026-11-02T10:00:00.000Z"),
    ])
    .await;
    let out = output(sync(&pool.connect_options(), &api.url, key)).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let kept: Vec<(String, String)> =
        sqlx::query_as("SELECT reason, raw_text FROM linkrunner.rejected_rows")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kept.len(), 1);
    assert!(
        kept.iter()
            .all(|(r, t)| !r.contains(key) && !t.contains(key)),
        "{kept:?}"
    );
    assert!(kept[0].1.contains("[redacted]"), "{kept:?}");
}

#[sqlx::test]
async fn sixteen_campaigns_of_bodies_without_end_stay_within_bounded_memory(pool: PgPool) {
    // Bodies that declare no length can only be counted as they arrive: sixteen of them at
    // once must not each hold the per-page cap.
    let campaigns: Vec<String> = (0..16)
        .map(|i| hostile::campaign(&format!("c{i}"), "Endless"))
        .collect();
    let api = hostile::serve(move |req: &Request| match req.path() {
        "/campaigns" => Reply::json(200, hostile::page("campaigns", &campaigns, 16, 1)),
        _ => Reply::Endless {
            chunk: br#"{"attributed_at":"2026-11-02T10:00:00.000Z"},"#.repeat(1000),
        },
    })
    .await;
    let mut cmd = sync(&pool.connect_options(), &api.url, "memory-key");
    cmd.args(["--concurrency", "16"]);
    let (out, peak_kib) = tokio::task::spawn_blocking(move || run_measured(cmd))
        .await
        .unwrap();
    eprintln!("peak RSS {} MiB", peak_kib / 1024);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        peak_kib < UNBOUNDED_KIB,
        "peak {peak_kib} KiB: {}",
        text(&out)
    );
}
