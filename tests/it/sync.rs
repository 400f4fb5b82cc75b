//! End-to-end syncs against the simulator over loopback and a fresh Postgres per test.

use crate::common::*;
use chrono::{Duration, Utc};
use linkrunner_sim::SimConfig;
use linkrunner_sync::error::Failure;
use linkrunner_sync::model::run::Outcome;
use linkrunner_sync::{db, sync};
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test]
async fn full_sync_equals_the_simulator_and_a_second_run_writes_nothing(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(7)).await;
    let config = sync_config(&server, "UTC");

    let first = sync::run(&config, &pool).await.unwrap();
    assert_eq!(first.outcome, Outcome::Success);
    assert_exact(&pool, &sim).await;
    let expected = sim.all_attributed_users().len() as u64;
    assert_eq!(first.totals.users.rows_inserted, expected);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.campaigns").await,
        sim.campaigns().len() as i64
    );

    // One users row per app user id, holding the profile of the latest attribution.
    let mut latest: std::collections::BTreeMap<String, (String, Value)> = Default::default();
    for row in sim.all_attributed_users() {
        if let Some(id) = row["user_data"]["id"].as_str() {
            let at = row["attributed_at"].as_str().unwrap().to_string();
            if latest.get(id).is_none_or(|(seen, _)| at > *seen) {
                latest.insert(id.to_string(), (at, row["user_data"]["email"].clone()));
            }
        }
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.users").await,
        latest.len() as i64
    );
    let (id, (_, email)) = latest.iter().next().unwrap();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT email FROM linkrunner.users WHERE user_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored.as_deref(), email.as_str());

    // Store listings as the simulator lists them.
    let links: i64 = sim
        .campaigns()
        .iter()
        .map(|c| c["store_listings"].as_array().map_or(0, Vec::len) as i64)
        .sum();
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM linkrunner.campaign_store_listings"
        )
        .await,
        links
    );

    let second = sync::run(&config, &pool).await.unwrap();
    assert_eq!(
        (
            second.totals.users.rows_inserted,
            second.totals.users.rows_updated
        ),
        (0, 0)
    );
    assert_exact(&pool, &sim).await;
}

#[sqlx::test]
async fn late_signups_within_the_lookback_arrive_on_the_next_run(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(11)).await;
    let config = sync_config(&server, "Europe/Berlin");
    sync::run(&config, &pool).await.unwrap();

    // An app signs up a user whose attribution the server records three hours in the past.
    let campaign = sim.campaigns()[0].clone();
    sim.set_now(Some(Utc::now() - Duration::hours(3)));
    signup(&server, &campaign, "late-install-1", "u_late_1").await;
    sim.set_now(None);

    let report = sync::run(&config, &pool).await.unwrap();
    assert_eq!(report.totals.users.rows_inserted, 1);
    let found = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users WHERE user_id = 'u_late_1'",
    )
    .await;
    assert_eq!(found, 1);
    assert_exact(&pool, &sim).await;
}

#[sqlx::test]
async fn renames_deactivation_listings_and_deletes_are_reflected(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(5)).await;
    let mut config = sync_config(&server, "UTC");
    sync::run(&config, &pool).await.unwrap();

    let ids: Vec<String> = sim
        .campaigns()
        .iter()
        .map(|c| c["display_id"].as_str().unwrap().to_string())
        .collect();
    let with_rows = ids[3..]
        .iter()
        .find(|id| !sim.attributed_users(id).is_empty())
        .unwrap()
        .clone();
    let (renamed, paused, relisted) = (&ids[0], &ids[1], &ids[2]);
    let http = reqwest::Client::new();
    let edit = |id: &str, body: Value| {
        http.patch(format!("{}/campaigns/{id}", server.base_url()))
            .header("linkrunner-key", "sim-key")
            .json(&body)
            .send()
    };
    assert!(edit(renamed, json!({"name": "Renamed campaign"}))
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(edit(paused, json!({"active": false}))
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(sim.set_store_listings(relisted, &["ios-beta"]));
    let rows_before = count(&pool, "SELECT count(*) FROM linkrunner.attributed_users").await;
    let deleted = http
        .delete(format!("{}/campaigns/{with_rows}", server.base_url()))
        .header("linkrunner-key", "sim-key")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    // A run limited to some campaigns never marks anything deleted.
    config.campaigns = vec![renamed.clone()];
    sync::run(&config, &pool).await.unwrap();
    let marked = count(
        &pool,
        "SELECT count(*) FROM linkrunner.campaigns WHERE deleted_at IS NOT NULL",
    )
    .await;
    assert_eq!(marked, 0);

    config.campaigns.clear();
    sync::run(&config, &pool).await.unwrap();
    let name: String =
        sqlx::query_scalar("SELECT name FROM linkrunner.campaigns WHERE display_id = $1")
            .bind(renamed)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(name, "Renamed campaign");
    let active: bool =
        sqlx::query_scalar("SELECT active FROM linkrunner.campaigns WHERE display_id = $1")
            .bind(paused)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!active);
    let listings: Vec<String> = sqlx::query_scalar(
        "SELECT store_listing_id FROM linkrunner.campaign_store_listings WHERE display_id = $1",
    )
    .bind(relisted)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(listings, vec!["ios-beta".to_string()]);
    let gone: Vec<String> = sqlx::query_scalar(
        "SELECT display_id FROM linkrunner.campaigns WHERE deleted_at IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(gone, vec![with_rows.clone()]);
    // Its rows stay.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.attributed_users").await,
        rows_before
    );
}

/// The same rows land whatever zone the windows are cut in, with windows small enough that
/// rows sit on their boundaries.
async fn exact_in_zone(pool: PgPool, zone: &str, window: &str) {
    let (sim, server) = start(SimConfig::small(3)).await;
    let mut config = sync_config(&server, zone);
    config.window = linkrunner_sync::model::window::WindowLen::parse(window).unwrap();
    config.page_size = 7;
    config.pages_per_scan = 2;
    let report = sync::run(&config, &pool).await.unwrap();
    assert_exact(&pool, &sim).await;
    // Ranges were split down to single windows many times.
    let scans = count(&pool, "SELECT count(*) FROM linkrunner.sync_windows").await;
    let rows = sim.all_attributed_users().len() as i64;
    assert!(
        scans >= rows / 14,
        "only {scans} ranges were read for {rows} rows"
    );
    assert_eq!(
        report.totals.users.rows_inserted,
        sim.all_attributed_users().len() as u64
    );
    let again = sync::run(&config, &pool).await.unwrap();
    assert_eq!(
        (
            again.totals.users.rows_inserted,
            again.totals.users.rows_updated
        ),
        (0, 0)
    );
}

#[sqlx::test]
async fn exact_in_utc(pool: PgPool) {
    exact_in_zone(pool, "UTC", "1d").await;
}

#[sqlx::test]
async fn exact_in_new_york_across_both_dst_changes(pool: PgPool) {
    exact_in_zone(pool, "America/New_York", "1d").await;
}

#[sqlx::test]
async fn exact_in_kolkata_with_sub_day_windows(pool: PgPool) {
    exact_in_zone(pool, "Asia/Kolkata", "6h").await;
}

#[sqlx::test]
async fn exact_in_lord_howe(pool: PgPool) {
    exact_in_zone(pool, "Australia/Lord_Howe", "1d").await;
}

#[sqlx::test]
async fn exact_in_santiago_where_dst_starts_at_midnight(pool: PgPool) {
    exact_in_zone(pool, "America/Santiago", "2d").await;
}

#[sqlx::test]
async fn a_backfill_never_moves_a_checkpoint_back(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(9)).await;
    let mut config = sync_config(&server, "UTC");
    sync::run(&config, &pool).await.unwrap();
    let before = checkpoints(&pool).await;
    assert!(!before.is_empty());

    config.since = Some("2026-06-01T00:00:00Z".parse().unwrap());
    config.until = Some("2026-07-01T00:00:00Z".parse().unwrap());
    config.rescan = true;
    sync::run(&config, &pool).await.unwrap();
    let after = checkpoints(&pool).await;
    for (id, (from, until)) in &before {
        let (from2, until2) = after[id];
        assert!(from2 <= *from && until2 >= *until, "{id} moved back");
    }
    assert_exact(&pool, &sim).await;
}

#[sqlx::test]
async fn rate_limits_server_errors_and_shifting_pages_are_survived(pool: PgPool) {
    let mut sim_config = SimConfig::small(13);
    sim_config.faults.rate_limit_rps = Some(20.0);
    sim_config.faults.retry_after = false;
    sim_config.faults.error_rate = 0.15;
    sim_config.faults.shift_rate = 0.3;
    let (sim, server) = start(sim_config).await;
    let mut config = sync_config(&server, "America/New_York");
    config.page_size = 20;
    config.pages_per_scan = 5;
    config.api.retry_max_delay = std::time::Duration::from_secs(1);
    // Four campaigns share twenty requests a second with no Retry-After: one request can meet a
    // long run of 429s on a busy machine; the job's default is eight retries of up to 60 s.
    config.api.max_retries = 20;
    let report = sync::run(&config, &pool).await.unwrap();
    assert_exact(&pool, &sim).await;
    let stats = sim.stats();
    assert!(stats.rate_limited > 0, "no 429 was served: {stats:?}");
    assert!(stats.server_errors > 0, "no 5xx was served: {stats:?}");
    assert!(report.totals.retries >= stats.rate_limited + stats.server_errors);
}

#[sqlx::test]
async fn retry_after_is_honoured(pool: PgPool) {
    let mut sim_config = SimConfig::small(17);
    sim_config.campaigns = 3;
    sim_config.users = 60;
    sim_config.faults.rate_limit_rps = Some(5.0);
    sim_config.faults.retry_after = true;
    let (sim, server) = start(sim_config).await;
    let mut config = sync_config(&server, "UTC");
    config.page_size = 3;
    config.api.retry_min_delay = std::time::Duration::from_millis(1);
    config.api.retry_max_delay = std::time::Duration::from_millis(1);
    let started = std::time::Instant::now();
    sync::run(&config, &pool).await.unwrap();
    assert_exact(&pool, &sim).await;
    let limited = sim.stats().rate_limited;
    assert!(limited > 0);
    // Each 429 made the client wait the server's one second, not the 1 ms backoff.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[sqlx::test]
async fn retry_after_as_an_http_date_is_honoured(pool: PgPool) {
    let mut sim_config = SimConfig::small(19);
    sim_config.campaigns = 3;
    sim_config.users = 60;
    sim_config.faults.rate_limit_rps = Some(5.0);
    sim_config.faults.retry_after_date = true;
    let (sim, server) = start(sim_config).await;
    let mut config = sync_config(&server, "UTC");
    config.page_size = 3;
    config.api.retry_min_delay = std::time::Duration::from_millis(1);
    config.api.retry_max_delay = std::time::Duration::from_millis(1);
    // Three retries of a millisecond are over long before the limit gives another request:
    // the run ends exact only because each 429's date, a second or two on, was waited for.
    config.api.max_retries = 3;
    let report = sync::run(&config, &pool).await.unwrap();
    assert_exact(&pool, &sim).await;
    let limited = sim.stats().rate_limited;
    assert!(limited > 0, "no 429 was served");
    assert!(report.totals.retries >= limited);
}

#[sqlx::test]
async fn incremental_runs_read_only_campaigns_whose_counter_moved(pool: PgPool) {
    // Counters that agree with the rows, so every one over rows is trusted; an empty
    // campaign's counter at 0 has proved nothing, so those are read on every run.
    let (sim, server) = start(SimConfig {
        counter_lie_rate: 0.0,
        ..SimConfig::small(41)
    })
    .await;
    let mut config = sync_config(&server, "UTC");
    sync::run(&config, &pool).await.unwrap();
    let campaigns = sim.campaigns().len() as u64;
    let counters = sim.counters();
    let empty = counters.iter().filter(|c| c.rows == 0).count() as u64;

    // Nothing changed: the campaign list and the empty campaigns are the only requests.
    let idle = sync::run(&config, &pool).await.unwrap();
    assert_eq!(idle.totals.requests, 1 + empty);
    assert_eq!(idle.totals.users.campaigns_skipped, campaigns - empty);

    // One signup moves one campaign's counter: that campaign is read, beside the empty ones.
    let with_rows = counters.iter().find(|c| c.rows > 0).unwrap();
    let campaign = sim
        .campaigns()
        .into_iter()
        .find(|c| c["display_id"] == with_rows.display_id.as_str())
        .unwrap();
    signup(&server, &campaign, "install-counter-1", "u_counter_1").await;
    let one = sync::run(&config, &pool).await.unwrap();
    assert_eq!(one.totals.requests, 2 + empty);
    assert_eq!(one.totals.users.campaigns_skipped, campaigns - 1 - empty);
    assert_eq!(one.totals.users.rows_inserted, 1);
    assert_exact(&pool, &sim).await;

    // Past --full-scan-every every campaign is read again, counter or not.
    config.full_scan_every = Duration::milliseconds(1);
    let full = sync::run(&config, &pool).await.unwrap();
    assert_eq!(full.totals.users.campaigns_skipped, 0);
    assert_eq!(full.totals.requests, 1 + campaigns);
}

/// A current schema is confirmed in two statements; anything else reaches the runner, which
/// applies or refuses.
#[sqlx::test(migrations = false)]
async fn migrations_apply_once_and_a_changed_history_is_refused(pool: PgPool) {
    let schema = db::Schema::default();
    let mut conn = pool.acquire().await.unwrap();
    db::migrate(&mut conn, &schema).await.unwrap();
    let history = "SELECT version, checksum, installed_on FROM linkrunner.schema_migrations
                   ORDER BY version";
    let before: Vec<(i64, Vec<u8>, chrono::DateTime<Utc>)> =
        sqlx::query_as(history).fetch_all(&mut *conn).await.unwrap();
    assert_eq!(before.len(), db::MIGRATOR.iter().count());
    db::migrate(&mut conn, &schema).await.unwrap();
    let after: Vec<(i64, Vec<u8>, chrono::DateTime<Utc>)> =
        sqlx::query_as(history).fetch_all(&mut *conn).await.unwrap();
    assert_eq!(after, before);

    let first = before[0].0;
    for (change, undo, refusal) in [
        (
            format!("UPDATE linkrunner.schema_migrations SET checksum = '\\x00' WHERE version = {first}"),
            "UPDATE linkrunner.schema_migrations m SET checksum = b.checksum
             FROM before b WHERE m.version = b.version",
            "other content",
        ),
        (
            "INSERT INTO linkrunner.schema_migrations (version, description, checksum)
             VALUES (99991231000000, 'from a newer release', '\\x00')"
                .to_string(),
            "DELETE FROM linkrunner.schema_migrations WHERE version = 99991231000000",
            "newer version",
        ),
    ] {
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS before AS SELECT * FROM linkrunner.schema_migrations",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query(&change).execute(&mut *conn).await.unwrap();
        let error = Failure::from(db::migrate(&mut conn, &schema).await.unwrap_err()).one_line();
        assert!(error.contains(refusal), "{change}: {error}");
        assert!(error.contains("another version"), "{error}");
        sqlx::query(undo).execute(&mut *conn).await.unwrap();
        db::migrate(&mut conn, &schema).await.unwrap();
    }
}

/// Versions before `--schema` kept the history in `public._sqlx_migrations` (as `#[sqlx::test]`
/// still does here): the first run carries it over and applies nothing twice; a migration left
/// half-applied there is refused.
#[sqlx::test]
async fn a_history_kept_by_an_earlier_version_is_carried_over(pool: PgPool) {
    let schema = db::Schema::default();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("UPDATE public._sqlx_migrations SET success = false WHERE version = (SELECT max(version) FROM public._sqlx_migrations)")
        .execute(&mut *conn)
        .await
        .unwrap();
    let error = Failure::from(db::migrate(&mut conn, &schema).await.unwrap_err()).one_line();
    assert!(error.contains("partially applied"), "{error}");
    sqlx::query("UPDATE public._sqlx_migrations SET success = true")
        .execute(&mut *conn)
        .await
        .unwrap();
    // A row of another tool's sqlx migrations in the same table is not this job's.
    sqlx::query(
        "INSERT INTO public._sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (1, 'another tool', true, '\\x01', 0)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    db::migrate(&mut conn, &schema).await.unwrap();
    let carried: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT version, checksum FROM linkrunner.schema_migrations ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let embedded: Vec<(i64, Vec<u8>)> = db::MIGRATOR
        .iter()
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect();
    assert_eq!(carried, embedded);
}

/// The run lock lives on the run's own session. When that session is killed mid-run, the run
/// takes the lock again on a new one, finishes and records its end.
#[sqlx::test]
async fn a_run_whose_session_is_killed_takes_the_lock_again_and_finishes(pool: PgPool) {
    let (sim, server) = start(SimConfig::small(43)).await;
    let mut config = sync_config(&server, "UTC");
    // About three seconds of requests, past the lock's two-second watch.
    config.api.rps = 3.0;
    let run = tokio::spawn({
        let pool = pool.clone();
        async move { sync::run(&config, &pool).await }
    });
    // pg_locks shows every database's locks; other tests run their own syncs meanwhile.
    let holder = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND ((classid::int8 << 32) | objid::int8) = 119238819409507
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let limit = std::time::Duration::from_secs(30);
    let pid = wait_for("the run holding the lock and reading", limit, || async {
        let pid: Option<i32> = sqlx::query_scalar(holder)
            .fetch_optional(&pool)
            .await
            .unwrap();
        pid.filter(|_| sim.stats().attributed_users_requests > 0)
    })
    .await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(killed);
    let retaken = wait_for("the lock taken again, or the run's end", limit, || async {
        let now: Option<i32> = sqlx::query_scalar(holder)
            .fetch_optional(&pool)
            .await
            .unwrap();
        if now.is_some_and(|p| p != pid) {
            Some(true)
        } else {
            run.is_finished().then_some(false)
        }
    })
    .await;
    assert!(
        retaken,
        "no session took the lock again while the run went on"
    );

    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Success);
    assert_exact(&pool, &sim).await;
    let recorded: (String, bool) = sqlx::query_as(
        "SELECT outcome, finished_at IS NOT NULL FROM linkrunner.sync_runs WHERE run_id = $1",
    )
    .bind(report.run_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, ("success".to_string(), true));
    // Released at the end, on whichever session held it.
    let left: Option<i32> = sqlx::query_scalar(holder)
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(left, None);
}

/// Campaigns read at once share one session for their look-ups: an incremental run over many
/// changed campaigns opens no more connections than a backfill's writers need.
#[sqlx::test]
async fn an_incremental_run_over_many_campaigns_opens_few_connections(test_pool: PgPool) {
    // Sized as the command sizes it for --concurrency 16.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect_with((*test_pool.connect_options()).clone())
        .await
        .unwrap();
    // Trusted counters, so the signups are what the run reads.
    let (sim, server) = start(SimConfig {
        campaigns: 40,
        users: 800,
        counter_lie_rate: 0.0,
        ..SimConfig::small(44)
    })
    .await;
    let mut config = sync_config(&server, "UTC");
    config.concurrency = 16;
    sync::run(&config, &pool).await.unwrap();
    for (i, campaign) in sim.campaigns().iter().enumerate() {
        signup(
            &server,
            campaign,
            &format!("install-many-{i}"),
            &format!("u_many_{i}"),
        )
        .await;
    }
    let sessions = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()";
    let before = count(&pool, sessions).await;
    let run = sync::run(&config, &pool).await.unwrap();
    assert_eq!(run.totals.users.rows_inserted, 40);
    assert_exact(&pool, &sim).await;
    // At most the writers' two and the look-ups' one, beside what the backfill left idle.
    let opened = count(&pool, sessions).await - before;
    assert!(opened <= 3, "{opened} sessions opened");
    pool.close().await;
}

/// Postgres can store no NUL character. A row holding one is kept aside with each NUL written
/// as the text \u0000; the rest of its range commits and the checkpoint moves on.
#[sqlx::test]
async fn a_row_holding_a_nul_is_kept_aside_and_its_range_still_commits(pool: PgPool) {
    // Trusted counters, so a campaign left to read would show as a request beside the empty
    // campaigns' (read on every run).
    let (sim, server) = start(SimConfig {
        counter_lie_rate: 0.0,
        ..SimConfig::small(45)
    })
    .await;
    let config = sync_config(&server, "UTC");
    sync::run(&config, &pool).await.unwrap();
    let campaign = sim.campaigns()[1].clone();
    let id = campaign["display_id"].as_str().unwrap().to_string();
    signup(&server, &campaign, "install-nul", "u_nul\u{0}x").await;
    signup(&server, &campaign, "install-after-nul", "u_after_nul").await;

    let failure = sync::run(&config, &pool).await.unwrap_err();
    assert!(failure.one_line().contains("rejected_rows"), "{failure}");
    // The range committed: the next run has nothing left to read.
    let next = sync::run(&config, &pool).await.unwrap();
    let empty = sim.counters().iter().filter(|c| c.rows == 0).count() as u64;
    assert_eq!(next.totals.requests, 1 + empty);
    let kept: Vec<(String, String)> = sqlx::query_as(
        "SELECT reason, raw->'user_data'->>'id' FROM linkrunner.rejected_rows
         WHERE campaign_display_id = $1",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].0.contains("NUL"), "{}", kept[0].0);
    assert_eq!(kept[0].1, "u_nul\\u0000x");
    // Everything else landed, the signup after it too.
    let stored = count(&pool, "SELECT count(*) FROM linkrunner.attributed_users").await;
    assert_eq!(stored as usize, sim.all_attributed_users().len() - 1);
    let after = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users WHERE user_id = 'u_after_nul'",
    )
    .await;
    assert_eq!(after, 1);
}

/// The list is stored a thousand campaigns a statement; a list of several thousands lands whole,
/// store listings too.
#[sqlx::test]
async fn a_list_of_thousands_of_campaigns_is_stored_whole(pool: PgPool) {
    let (sim, server) = start(SimConfig {
        campaigns: 2_100,
        users: 2_100,
        ..SimConfig::small(46)
    })
    .await;
    sync::run(&sync_config(&server, "UTC"), &pool)
        .await
        .unwrap();
    let listed = sim.campaigns();
    let pairs: usize = listed
        .iter()
        .map(|c| c["store_listings"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM linkrunner.campaigns").await,
        listed.len() as i64
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM linkrunner.campaign_store_listings"
        )
        .await,
        pairs as i64
    );
    assert_exact(&pool, &sim).await;
}

/// Every figure a run ends with reaches the ledger and `status` under its declared name, with
/// the value the run reported; the figures the simulator can count agree with it.
#[sqlx::test]
async fn every_figure_of_a_run_reaches_the_ledger_and_status(pool: PgPool) {
    use linkrunner_sync::commands::status::Figure as Stored;
    use linkrunner_sync::model::figures::{self, Value as Figure};
    let (sim, server) = start(SimConfig::small(8)).await;
    let config = sync_config(&server, "UTC");
    let report = sync::run(&config, &pool).await.unwrap();
    let status =
        linkrunner_sync::commands::status::load(&Default::default(), &pool, 1, Duration::hours(1))
            .await
            .unwrap();
    let run = &status.runs[0];
    assert_eq!(run.run_id, report.run_id);
    assert_eq!(run.figures.len(), figures::names().count());
    for f in report.totals.figures() {
        let want = match f.value {
            Figure::Count(n) => Stored::Count(n as i64),
            Figure::Text(t) => Stored::Text(t),
        };
        assert_eq!(run.figures[f.name], want, "{}", f.name);
    }
    assert_eq!(run.count("requests") as u64, sim.stats().requests);
    let users = sim.all_attributed_users().len() as i64;
    assert_eq!(
        (run.count("rows_received"), run.count("rows_inserted")),
        (users, users)
    );
    assert_eq!(
        run.count("campaigns_listed") as usize,
        sim.campaigns().len()
    );
    let json = serde_json::to_value(&status).unwrap();
    for name in figures::names() {
        assert!(
            json["runs"][0].get(name).is_some(),
            "{name} in status --json"
        );
    }
    let text = linkrunner_sync::commands::status::render(&status);
    assert!(text.contains(&format!("{users} rows read")), "{text}");
}
