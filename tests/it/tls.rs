//! Postgres over TLS, against a server of the test's own that turns plain connections away and
//! presents a certificate signed by a CA made for the test.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::daemons::{scratch_dir, tls_postgres, Authority, Daemon};
use crate::common::*;
use linkrunner_sim::SimConfig;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::PgPool;

fn url(server: &Daemon, host: &str, query: &str) -> String {
    format!(
        "postgres://postgres:canary-db-password@{host}:{}/postgres?{query}",
        server.port
    )
}

fn root_cert(path: &Path) -> String {
    format!("sslrootcert={}", path.display())
}

/// A pool over TLS once the server takes connections (it listens before it is ready).
async fn pool(server: &Daemon) -> PgPool {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(server.port)
        .username("postgres")
        .database("postgres")
        .ssl_mode(PgSslMode::Require);
    wait_for("the TLS server", Duration::from_secs(30), || {
        let options = options.clone();
        async move { PgPoolOptions::new().connect_with(options).await.ok() }
    })
    .await
}

fn one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("canary-db-password"), "{stderr}");
    stderr
}

#[tokio::test]
async fn require_and_verify_full_sync_over_tls_and_plain_is_turned_away() {
    let dir = scratch_dir("tls");
    let ca = Authority::new(&dir, "test-ca");
    let server = tls_postgres(&ca, &dir);
    let pool = pool(&server).await;
    let (sim, api) = start(SimConfig::small(71)).await;

    // The server takes TLS only: a plain connection is refused, with what to check.
    let plain = url(&server, "127.0.0.1", "sslmode=disable");
    let out = output(sync_command(&plain, &api.base_url(), "sim-key")).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(one_line(&out).contains("refused the login"), "{out:?}");
    assert_eq!(sim.stats().campaigns_requests, 0);

    let require = url(&server, "127.0.0.1", "sslmode=require");
    let out = output(sync_command(&require, &api.base_url(), "sim-key")).await;
    assert!(out.status.success(), "{out:?}\n{}", server.log());
    assert_exact(&pool, &sim).await;

    let campaigns = sim.campaigns();
    signup(&api, &campaigns[0], "install-tls", "user-tls").await;
    let verified = url(
        &server,
        "localhost",
        &format!("sslmode=verify-full&{}", root_cert(&ca.cert)),
    );
    let out = output(sync_command(&verified, &api.base_url(), "sim-key")).await;
    assert!(out.status.success(), "{out:?}\n{}", server.log());
    assert_exact(&pool, &sim).await;
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"))
        .arg("status")
        .env("DATABASE_URL", &verified)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
}

#[tokio::test]
async fn a_certificate_that_fails_verification_is_a_configuration_error() {
    let dir = scratch_dir("tls");
    let ca = Authority::new(&dir, "test-ca");
    let stranger = Authority::new(&dir, "another-ca");
    let server = tls_postgres(&ca, &dir);
    let pool = pool(&server).await;
    let (sim, api) = start(SimConfig::small(72)).await;

    let wrong_ca = format!("sslmode=verify-full&{}", root_cert(&stranger.cert));
    let missing = format!(
        "sslmode=verify-ca&{}",
        root_cert(&dir.join("no-such-ca.crt"))
    );
    // The system's roots do not know the test's CA either.
    for query in [wrong_ca.as_str(), &missing, "sslmode=verify-full"] {
        let out = output(sync_command(
            &url(&server, "localhost", query),
            &api.base_url(),
            "sim-key",
        ))
        .await;
        assert_eq!(out.status.code(), Some(2), "{query}: {out:?}");
        let line = one_line(&out);
        assert!(
            line.contains("TLS") || line.contains("sslrootcert"),
            "{query}: {line}"
        );
    }
    assert_eq!(sim.stats().campaigns_requests, 0);
    let schemas = count(
        &pool,
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'linkrunner'",
    )
    .await;
    assert_eq!(schemas, 0, "something was written");
}
