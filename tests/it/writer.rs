//! The two write paths (COPY for new rows, upsert for known ones) store odd text exactly.

use crate::common::*;
use linkrunner_sync::api::budget::{Hold, MemoryBudget};
use linkrunner_sync::db::{self, writer};
use linkrunner_sync::model::user::UserRow;
use serde_json::{json, Value};
use sqlx::PgPool;

fn odd_row(n: u32) -> Value {
    json!({
        // Finer than the API's milliseconds: Postgres keeps microseconds, both paths alike.
        "attributed_at": format!("2026-03-08T07:00:0{n}.001{}Z", ["", "234", "234567"][n as usize % 3]),
        "campaign_display_id": "odd",
        "campaign_name": "tab\there, newline\nthere, back\\slash, quote\" and ünïcödé ✓",
        "link": "https://x.example/?a=1&b=\\N",
        "installed_at": "2026-03-08T06:59:59+05:30",
        "store_click_at": "",
        "user_data": {"id": format!("u\t{n}"), "name": "Line\r\nBreak", "device_data": {"k": "\\\\server\\share", "n": 1.5e300}},
        "surprise": {"nested": [1, "two\t", null]}
    })
}

#[sqlx::test]
async fn odd_text_survives_both_write_paths(pool: PgPool) {
    let rows: Vec<Value> = (1..=3).map(odd_row).collect();
    let parsed: Vec<UserRow> = rows
        .iter()
        .map(|r| UserRow::from_wire("odd", &serde_json::value::to_raw_value(r).unwrap()).unwrap())
        .collect();
    let refs: Vec<&UserRow> = parsed.iter().collect();
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        writer::copy_new_users(&db::Schema::default(), &mut conn, &refs[..2])
            .await
            .unwrap(),
        2
    );
    let counts = writer::upsert_users(&db::Schema::default(), &mut conn, &refs)
        .await
        .unwrap();
    // The two copied rows are unchanged; the third is new.
    let odd = counts["odd"];
    assert_eq!((counts.len(), odd.inserted, odd.updated), (1, 1, 0));
    assert_eq!(canonical(&stored_rows(&pool).await), canonical(&rows));
}

#[sqlx::test]
async fn a_fresh_range_that_holds_rows_after_all_is_written_with_a_look_up(pool: PgPool) {
    use chrono::{TimeZone, Utc};
    use linkrunner_sync::model::window::Window;
    use linkrunner_sync::sync::batch::{BatchWriter, RangeRows, Target};

    let rows: Vec<Value> = (1..=3).map(odd_row).collect();
    let range = Window {
        start: Utc.with_ymd_and_hms(2026, 3, 8, 0, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0).unwrap(),
    };
    let read = |n: usize, fresh: bool, hold: Hold| RangeRows {
        campaign: "odd".into(),
        range,
        run_from: range.start,
        rows: rows[..n]
            .iter()
            .map(|r| {
                UserRow::from_wire("odd", &serde_json::value::to_raw_value(r).unwrap()).unwrap()
            })
            .collect(),
        rejected: Vec::new(),
        requests: 1,
        received: n as u64,
        fresh,
        verified: None,
        hold,
    };
    let (writer, mut tasks) = BatchWriter::start(
        pool.clone(),
        Target {
            run_id: uuid::Uuid::new_v4(),
            schema: db::Schema::default(),
        },
        1,
        false,
    );
    // The rows' hold on the memory budget is given back once they are committed.
    let budget = MemoryBudget::new(1 << 20);
    let first = writer.write(read(2, true, budget.take(5000).await));
    let first = first.await.unwrap();
    assert_eq!((first.inserted, first.updated), (2, 0));
    assert_eq!(budget.in_use(), 0);
    // Wrongly taken to be fresh: the COPY meets the stored rows, and the batch is written again.
    let again = writer.write(read(3, true, Hold::default())).await.unwrap();
    assert_eq!((again.inserted, again.updated), (1, 0));
    drop(writer);
    while tasks.join_next().await.is_some() {}
    assert_eq!(canonical(&stored_rows(&pool).await), canonical(&rows));
    let checkpoint: (chrono::DateTime<Utc>, chrono::DateTime<Utc>) = sqlx::query_as(
        "SELECT covered_from, synced_until FROM linkrunner.sync_checkpoints
         WHERE campaign_display_id = 'odd'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(checkpoint, (range.start, range.end));
}

/// Both paths send large sets in pieces (COPY data in chunks, upserts a few hundred rows a
/// statement); every row arrives and the counts add up across the pieces.
#[sqlx::test]
async fn large_sets_go_through_both_paths_in_pieces(pool: PgPool) {
    let row = |n: u32, name: &str| {
        let at = chrono::DateTime::from_timestamp(1_780_000_000 + i64::from(n), 0).unwrap();
        json!({
            "attributed_at": at.to_rfc3339(),
            "campaign_display_id": "big",
            "campaign_name": name,
            "user_data": {"id": format!("u{n}"), "device_data": {"pad": "x".repeat(400)}},
        })
    };
    let parse = |v: &Value| {
        UserRow::from_wire("big", &serde_json::value::to_raw_value(v).unwrap()).unwrap()
    };
    let first: Vec<Value> = (0..1_200).map(|n| row(n, "a")).collect();
    let parsed: Vec<UserRow> = first.iter().map(parse).collect();
    let refs: Vec<&UserRow> = parsed.iter().collect();
    let mut conn = pool.acquire().await.unwrap();
    // Over 500 KB of COPY data, in chunks of 64 KiB.
    assert_eq!(
        writer::copy_new_users(&db::Schema::default(), &mut conn, &refs)
            .await
            .unwrap(),
        1_200
    );
    // 1,200 known rows (every third renamed) and 300 new ones, in statements of 500 rows.
    let second: Vec<Value> = (0..1_500)
        .map(|n| row(n, if n % 3 == 0 { "b" } else { "a" }))
        .collect();
    let parsed: Vec<UserRow> = second.iter().map(parse).collect();
    let refs: Vec<&UserRow> = parsed.iter().collect();
    let counts = writer::upsert_users(&db::Schema::default(), &mut conn, &refs)
        .await
        .unwrap()["big"];
    assert_eq!((counts.inserted, counts.updated), (300, 400));
    assert_eq!(canonical(&stored_rows(&pool).await), canonical(&second));
}
