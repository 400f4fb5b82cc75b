//! Items holding text Postgres cannot store (a NUL, half of a UTF-16 pair, bytes that are not
//! UTF-8, a key too long to index) or that serde reads differently from Postgres (a number past
//! f64, a key received twice). One rule holds for each: the item is kept in `rejected_rows` as
//! received, with the reason; the rows and campaigns beside it are stored; the run ends partial
//! (exit code 4); and a campaign list holding such an item marks no campaign deleted.

use std::collections::HashMap;
use std::process::Output;

use crate::common::hostile::{self, Hostile, Reply};
use crate::common::{count, database_url, output, sync_command};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// A user item of campaign `c1`, at hour `hour` of 2026-11-02, whose `user_data` is `user_data`
/// (JSON text, sent as is).
fn user(hour: u32, user_data: &str) -> Vec<u8> {
    format!(
        r#"{{"campaign_display_id":"c1","attributed_at":"2026-11-02T{hour:02}:00:00.000Z","user_data":{user_data}}}"#
    )
    .into_bytes()
}

/// A campaign item whose `display_id` and `name` are JSON text, sent as is.
fn campaign(display_id: &str, name: &str) -> Vec<u8> {
    format!(
        r#"{{"display_id":{display_id},"name":{name},"created_at":"2026-11-01T00:00:00.000Z","active":true,"attributed_users":2,"store_listings":[]}}"#
    )
    .into_bytes()
}

/// Campaign `c1` and its users `u1` and `u2`, a good page for the bad item to sit in.
fn good_users() -> Vec<Vec<u8>> {
    vec![user(9, r#"{"id":"u1"}"#), user(12, r#"{"id":"u2"}"#)]
}

/// A server listing `campaigns` and serving each listed `users` in one page; any other
/// `display_id` answers 404.
async fn api(campaigns: Vec<Vec<u8>>, users: Vec<(&str, Vec<Vec<u8>>)>) -> Hostile {
    let users: HashMap<String, Vec<Vec<u8>>> = users
        .into_iter()
        .map(|(id, items)| (id.to_owned(), items))
        .collect();
    hostile::serve(move |req| {
        let page = |key: &str, items: &[Vec<u8>]| {
            Reply::json(200, hostile::page_bytes(key, items, items.len() as u64, 1))
        };
        match req.path() {
            "/campaigns" => page("campaigns", &campaigns),
            "/attributed-users" => match req.query("display_id").and_then(|id| users.get(&id)) {
                Some(items) => page("users", items),
                None => Reply::json(404, r#"{"msg":"Resource not found."}"#),
            },
            _ => Reply::json(404, r#"{"msg":"Resource not found."}"#),
        }
    })
    .await
}

/// A server with campaign `c1` alone, whose one page holds `users`.
async fn api_with_users(users: Vec<Vec<u8>>) -> Hostile {
    let c1 = campaign(r#""c1""#, r#""One""#);
    api(vec![c1], vec![("c1", users)]).await
}

/// Opens the test's database and stores campaign `c_gone`, which no list below holds: a run
/// that marks deletions marks it.
async fn database(db: &PgConnectOptions) -> PgPool {
    let pool = PgPoolOptions::new().connect_with(db.clone()).await.unwrap();
    stored_before(&pool, "c_gone").await;
    pool
}

/// Stores a campaign as an earlier run would have.
async fn stored_before(pool: &PgPool, display_id: &str) {
    sqlx::query(
        "INSERT INTO linkrunner.campaigns (display_id, name, raw)
         VALUES ($1, 'Earlier', jsonb_build_object('display_id', $1))",
    )
    .bind(display_id)
    .execute(pool)
    .await
    .unwrap();
}

/// Runs the binary over November 2026 against `api`. Its lists never hold `c_gone`, the one
/// campaign stored before: the deletion they mark is real, so the guard against another
/// project's key is told so.
async fn sync(db: &PgConnectOptions, api: &Hostile) -> Output {
    let mut cmd = sync_command(&database_url(db), &api.url, "hostile-key");
    cmd.args(["--since", "2026-11-01T00:00:00Z", "--accept-deletions"]);
    output(cmd).await
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A row of `rejected_rows`.
#[derive(Debug, sqlx::FromRow)]
struct Kept {
    kind: String,
    campaign_display_id: String,
    reason: String,
    raw_text: String,
}

async fn kept(pool: &PgPool) -> Vec<Kept> {
    sqlx::query_as(
        "SELECT kind, campaign_display_id, reason, raw_text FROM linkrunner.rejected_rows
         ORDER BY raw_text",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The one row kept, checked against what it must say.
async fn kept_one(pool: &PgPool, kind: &str, campaign: &str, reason: &str) -> Kept {
    let mut kept = kept(pool).await;
    assert_eq!(kept.len(), 1, "{kept:#?}");
    let one = kept.remove(0);
    assert_eq!(
        (one.kind.as_str(), one.campaign_display_id.as_str()),
        (kind, campaign)
    );
    assert!(one.reason.contains(reason), "{}", one.reason);
    one
}

/// A text in the `raw` jsonb of the one row kept, by path.
async fn raw_at(pool: &PgPool, path: &[&str]) -> String {
    sqlx::query_scalar("SELECT raw #>> $1 FROM linkrunner.rejected_rows")
        .bind(path)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The user ids stored, in order.
async fn user_ids(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT COALESCE(user_id, row_key) FROM linkrunner.attributed_users ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The campaigns stored, in order, and those marked deleted.
async fn campaigns(pool: &PgPool) -> (Vec<String>, Vec<String>) {
    let all = sqlx::query_scalar("SELECT display_id FROM linkrunner.campaigns ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap();
    let deleted = sqlx::query_scalar(
        "SELECT display_id FROM linkrunner.campaigns WHERE deleted_at IS NOT NULL ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    (all, deleted)
}

/// What the run ledger says of the run: its outcome and the rows it rejected.
async fn ledger(pool: &PgPool) -> (String, i64) {
    sqlx::query_as("SELECT outcome, rows_rejected FROM linkrunner.sync_runs")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Asserts what every bad user row must leave: the good rows of its page stored, its range
/// committed, the run partial with one row rejected, only the campaign no longer listed marked
/// deleted. Returns the kept row.
async fn assert_row_kept_aside(pool: &PgPool, out: &Output, reason: &str) -> Kept {
    assert_exit(out, 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejected_rows"));
    assert_eq!(user_ids(pool).await, ["u1", "u2"]);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM linkrunner.sync_checkpoints WHERE campaign_display_id = 'c1'"
        )
        .await,
        1,
        "the range committed"
    );
    assert_eq!(ledger(pool).await, ("partial".to_owned(), 1));
    // A bad row leaves the list complete: c_gone, no longer listed, is rightly marked.
    assert_eq!(
        campaigns(pool).await,
        (
            vec!["c1".to_owned(), "c_gone".to_owned()],
            vec!["c_gone".to_owned()]
        )
    );
    kept_one(pool, "attributed_user", "c1", reason).await
}

/// Asserts what every bad campaign must leave: `c1` and its rows stored, the bad one never
/// asked for, the run partial with one item rejected and a warning naming `named`, and no
/// campaign marked deleted (`c_gone` included). Returns the kept row.
async fn assert_campaign_kept_aside(
    pool: &PgPool,
    api: &Hostile,
    out: &Output,
    (campaign, reason, named): (&str, &str, &str),
) -> Kept {
    assert_exit(out, 4);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(named), "{stderr}");
    assert_eq!(user_ids(pool).await, ["u1", "u2"]);
    let (_, deleted) = campaigns(pool).await;
    assert!(deleted.is_empty(), "{deleted:?} marked deleted");
    let asked: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.path() == "/attributed-users")
        .map(|r| r.query("display_id").unwrap_or_default())
        .filter(|id| id != "c1")
        .collect();
    assert!(asked.is_empty(), "asked for {asked:?}");
    assert_eq!(ledger(pool).await, ("partial".to_owned(), 1));
    kept_one(pool, "campaign", campaign, reason).await
}

/// `len` letters and digits that do not compress (a repeated letter would: Postgres compresses
/// a long index entry before it measures it).
fn noise(seed: u64, len: usize) -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(state % 36) as usize])
        })
        .collect()
}

/// Each `\udcXX` escape back to the byte 0xXX it stands for.
fn unescape_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("\\udc") {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let byte = u8::from_str_radix(&rest[i + 4..i + 6], 16).unwrap();
        assert!(byte >= 0x80, "{text}");
        out.push(byte);
        rest = &rest[i + 6..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

#[sqlx::test]
async fn a_lone_surrogate_in_a_user_row_keeps_only_that_row_aside(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = database(&db).await;
    // What JavaScript sends for a name cut in the middle of an emoji.
    let bad = user(10, r#"{"id":"u_zo","name":"Zo\ud83d"}"#);
    let mut users = good_users();
    users.insert(1, bad.clone());
    let api = api_with_users(users).await;
    let out = sync(&db, &api).await;
    let kept = assert_row_kept_aside(&pool, &out, "surrogate").await;
    assert_eq!(kept.raw_text.as_bytes(), bad);
    // raw holds it too, with the escape written as text.
    let name = raw_at(&pool, &["user_data", "name"]).await;
    assert_eq!(name, "Zo\\ud83d");
}

#[sqlx::test]
async fn a_nul_in_a_user_row_keeps_only_that_row_aside(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = database(&db).await;
    let bad = user(10, r#"{"id":"u_nul","name":"Ada\u0000Lovelace"}"#);
    let mut users = good_users();
    users.insert(1, bad.clone());
    let api = api_with_users(users).await;
    let out = sync(&db, &api).await;
    let kept = assert_row_kept_aside(&pool, &out, "NUL").await;
    assert_eq!(kept.raw_text.as_bytes(), bad);
    let name = raw_at(&pool, &["user_data", "name"]).await;
    assert_eq!(name, "Ada\\u0000Lovelace");
}

#[sqlx::test]
async fn a_user_id_too_long_to_index_keeps_only_that_row_aside(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = database(&db).await;
    let long = noise(1, 3000);
    let bad = user(10, &format!(r#"{{"id":"{long}","name":"Long"}}"#));
    let mut users = good_users();
    users.insert(1, bad.clone());
    let api = api_with_users(users).await;
    let out = sync(&db, &api).await;
    let kept = assert_row_kept_aside(&pool, &out, "user_data.id is 3000 bytes").await;
    assert!(kept.reason.contains("1024"), "{}", kept.reason);
    assert_eq!(kept.raw_text.as_bytes(), bad);
    assert_eq!(raw_at(&pool, &["user_data", "id"]).await, long);
}

#[sqlx::test]
async fn a_display_id_too_long_to_index_keeps_only_that_campaign_aside(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = database(&db).await;
    let long = noise(1, 3000);
    let bad = campaign(&format!(r#""{long}""#), r#""Long""#);
    let c1 = campaign(r#""c1""#, r#""One""#);
    let api = api(vec![c1, bad.clone()], vec![("c1", good_users())]).await;
    let out = sync(&db, &api).await;
    let named = (
        "(display_id not storable)",
        "display_id is 3000 bytes",
        &long[..40],
    );
    let kept = assert_campaign_kept_aside(&pool, &api, &out, named).await;
    assert_eq!(kept.raw_text.as_bytes(), bad);
    assert_eq!(
        campaigns(&pool).await.0,
        ["c1", "c_gone"],
        "the list was stored"
    );
}

#[sqlx::test]
async fn bytes_that_are_not_utf8_in_a_users_page_keep_only_their_row_aside(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = database(&db).await;
    // Latin-1 "é", and the first half of a UTF-8 emoji.
    let bad = user(10, "{\"id\":\"u_cafe\",\"name\":\"Caf\u{e9}\"}")
        .into_iter()
        .flat_map(|b| match b {
            0xc3 => vec![],
            0xa9 => vec![0xe9, 0xf0, 0x9f],
            b => vec![b],
        })
        .collect::<Vec<u8>>();
    assert!(std::str::from_utf8(&bad).is_err());
    let mut users = good_users();
    users.insert(1, bad.clone());
    let api = api_with_users(users).await;
    let out = sync(&db, &api).await;
    let kept = assert_row_kept_aside(&pool, &out, "not UTF-8").await;
    assert!(
        kept.raw_text.contains(r#""name":"Caf\udce9\udcf0\udc9f""#),
        "{}",
        kept.raw_text
    );
    assert_eq!(unescape_bytes(&kept.raw_text), bad, "the bytes as received");
    let name = raw_at(&pool, &["user_data", "name"]).await;
    assert_eq!(name, r"Caf\udce9\udcf0\udc9f");
}

#[sqlx::test]
async fn bytes_that_are_not_utf8_in_the_campaign_list_keep_only_their_campaign_aside(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = database(&db).await;
    stored_before(&pool, "c2").await;
    let bad: Vec<u8> = campaign(r#""c2""#, r#""Caf?""#)
        .into_iter()
        .map(|b| if b == b'?' { 0xe9 } else { b })
        .collect();
    let c1 = campaign(r#""c1""#, r#""One""#);
    let api = api(vec![c1, bad.clone()], vec![("c1", good_users())]).await;
    let out = sync(&db, &api).await;
    let named = ("c2", "not UTF-8", "c2");
    let kept = assert_campaign_kept_aside(&pool, &api, &out, named).await;
    assert!(
        kept.raw_text.contains(r#""name":"Caf\udce9""#),
        "{}",
        kept.raw_text
    );
    assert_eq!(unescape_bytes(&kept.raw_text), bad, "the bytes as received");
    // c2 keeps what an earlier run stored.
    let name: String =
        sqlx::query_scalar("SELECT name FROM linkrunner.campaigns WHERE display_id = 'c2'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(name, "Earlier");
}

#[sqlx::test]
async fn a_lone_surrogate_in_a_campaign_name_keeps_only_that_campaign_aside(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = database(&db).await;
    stored_before(&pool, "c2").await;
    let bad = campaign(r#""c2""#, r#""Spring \ud83d""#);
    let c1 = campaign(r#""c1""#, r#""One""#);
    let api = api(
        vec![c1, bad.clone()],
        vec![("c1", good_users()), ("c2", good_users())],
    )
    .await;
    let out = sync(&db, &api).await;
    let named = ("c2", "surrogate", "c2");
    let kept = assert_campaign_kept_aside(&pool, &api, &out, named).await;
    assert_eq!(kept.raw_text.as_bytes(), bad);
    assert_eq!(raw_at(&pool, &["name"]).await, "Spring \\ud83d");
}

#[sqlx::test]
async fn a_nul_in_a_display_id_is_never_asked_for(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = database(&db).await;
    let bad = campaign(r#""c\u0000x""#, r#""Nul""#);
    let c1 = campaign(r#""c1""#, r#""One""#);
    let api = api(vec![c1, bad.clone()], vec![("c1", good_users())]).await;
    let out = sync(&db, &api).await;
    let named = (
        "(display_id not storable)",
        "display_id holds \\u0000",
        "not storable",
    );
    let kept = assert_campaign_kept_aside(&pool, &api, &out, named).await;
    assert_eq!(kept.raw_text.as_bytes(), bad);
    assert_eq!(raw_at(&pool, &["display_id"]).await, "c\\u0000x");
    assert_eq!(campaigns(&pool).await.0, ["c1", "c_gone"]);
}

#[sqlx::test]
async fn a_number_past_f64_is_kept_as_received(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = database(&db).await;
    let bad = br#"{"campaign_display_id":"c1","attributed_at":1e400,"user_data":{"id":"u_big"}}"#;
    let mut users = good_users();
    users.insert(1, bad.to_vec());
    let api = api_with_users(users).await;
    let out = sync(&db, &api).await;
    let kept = assert_row_kept_aside(&pool, &out, "attributed_at").await;
    assert_eq!(kept.raw_text.as_bytes(), bad);
    // raw holds the number whole too: 1 and 400 zeros.
    assert_eq!(raw_at(&pool, &["user_data", "id"]).await, "u_big");
    let at = raw_at(&pool, &["attributed_at"]).await;
    assert_eq!(at, format!("1{}", "0".repeat(400)));
}

/// A key received twice is no error: of the two, the last counts, for every column derived from
/// the row as for the `user_data` Postgres keeps.
#[sqlx::test]
async fn of_a_key_received_twice_the_last_counts_everywhere(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = database(&db).await;
    let twice = user(10, r#"{"id":"u_first","name":"A","id":"u_last"}"#);
    let mut users = good_users();
    users.insert(1, twice);
    let api = api_with_users(users).await;
    let out = sync(&db, &api).await;
    assert_exit(&out, 0);
    assert_eq!(user_ids(&pool).await, ["u1", "u2", "u_last"]);
    let (row_key, id): (String, String) = sqlx::query_as(
        "SELECT row_key, user_data->>'id' FROM linkrunner.attributed_users
         WHERE user_id = 'u_last'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((row_key.as_str(), id.as_str()), ("u:u_last", "u_last"));
    assert!(kept(&pool).await.is_empty());
    assert_eq!(ledger(&pool).await, ("success".to_owned(), 0));
    assert_eq!(
        campaigns(&pool).await.1,
        ["c_gone"],
        "a complete list marks"
    );
}

/// The limit leaves room: keys of 1,024 bytes that do not compress, a campaign's and a row's in
/// one index entry, are stored.
#[sqlx::test]
async fn keys_at_the_limit_are_stored(_: PgPoolOptions, db: PgConnectOptions) {
    let pool = database(&db).await;
    let [display_id, user_id, device_id, listing] = [1, 2, 3, 4].map(|seed| noise(seed, 1024));
    let item = format!(
        r#"{{"display_id":"{display_id}","name":"Big","created_at":"2026-11-01T00:00:00.000Z","store_listings":[{{"store_listing_id":"{listing}"}}]}}"#
    );
    let users = vec![
        user(9, &format!(r#"{{"id":"{user_id}"}}"#)),
        user(
            10,
            &format!(r#"{{"id":null,"device_data":{{"install_instance_id":"{device_id}"}}}}"#),
        ),
    ];
    let api = api(vec![item.into_bytes()], vec![(display_id.as_str(), users)]).await;
    let out = sync(&db, &api).await;
    assert_exit(&out, 0);
    assert_eq!(
        user_ids(&pool).await,
        [format!("d:install_instance_id={device_id}"), user_id]
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM linkrunner.campaign_store_listings"
        )
        .await,
        1
    );
    assert!(kept(&pool).await.is_empty());
}

#[sqlx::test]
async fn a_number_postgres_cannot_hold_keeps_only_that_row_aside(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    // Past numeric's range: the class of anything Postgres refuses that no check names in
    // advance. The range is read again with each row tried first.
    let pool = database(&db).await;
    let bad = user(10, r#"{"id":"u_big","score":1e200000}"#);
    let mut users = good_users();
    users.insert(1, bad.clone());
    let api = api_with_users(users).await;
    let out = sync(&db, &api).await;
    let kept = assert_row_kept_aside(&pool, &out, "Postgres refused").await;
    assert_eq!(kept.raw_text.as_bytes(), bad);
}

#[sqlx::test]
async fn a_campaign_postgres_cannot_hold_keeps_only_that_campaign_aside(
    _: PgPoolOptions,
    db: PgConnectOptions,
) {
    let pool = database(&db).await;
    let bad = br#"{"display_id":"c2","name":"Two","created_at":"2026-11-01T00:00:00.000Z","active":true,"attributed_users":0,"store_listings":[],"score":1e-20000}"#.to_vec();
    let c1 = campaign(r#""c1""#, r#""One""#);
    let api = api(
        vec![c1, bad.clone()],
        vec![("c1", good_users()), ("c2", vec![])],
    )
    .await;
    let out = sync(&db, &api).await;
    assert_exit(&out, 4);
    assert_eq!(user_ids(&pool).await, ["u1", "u2"]);
    let (stored, deleted) = campaigns(&pool).await;
    assert_eq!(stored, ["c1", "c_gone"]);
    assert!(deleted.is_empty(), "{deleted:?} marked deleted");
    assert_eq!(ledger(&pool).await, ("partial".to_owned(), 1));
    let kept = kept_one(&pool, "campaign", "c2", "Postgres refused").await;
    assert_eq!(kept.raw_text.as_bytes(), bad);
}
