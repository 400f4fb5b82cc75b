//! The job against servers that break the contract on purpose: each test is one way an API, a
//! Pushgateway or the machine can turn hostile, and the promise the job keeps regardless.

mod common;

use common::hostile::{self, Reply};
use common::{count, database_url, output, sync_command};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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
    let mut cmd = sync_command(&database_url(&db), &api.url, "hostile-key");
    cmd.args(["--since", "2026-11-01T00:00:00Z"]);
    let out = output(cmd).await;
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
