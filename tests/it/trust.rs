//! A campaign is skipped only while its `attributed_users` counter has been seen to agree with
//! its rows: late rows behind a counter that lies are stored by the next run.

use std::collections::BTreeMap;

use crate::common::*;
use chrono::{DateTime, Duration, TimeZone, Utc};
use linkrunner_sim::{Counter, CounterState, SimConfig, Simulator};
use linkrunner_sync::sync;
use serde_json::Value;
use sqlx::{PgPool, Row};

/// Per campaign: whether its counter is trusted now.
async fn trusted(pool: &PgPool) -> BTreeMap<String, bool> {
    sqlx::query(
        "SELECT campaign_display_id, COALESCE(trusted_from <= now(), false)
         FROM linkrunner.sync_checkpoints",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// What the simulator knows of a campaign: its true rows beside its counter.
fn truth(sim: &Simulator, id: &str) -> CounterState {
    let found = sim.counters().into_iter().find(|c| c.display_id == id);
    found.unwrap()
}

fn id(campaign: &Value) -> String {
    campaign["display_id"].as_str().unwrap().to_string()
}

/// Live campaigns with at least `rows` rows, in listing order.
fn with_rows(sim: &Simulator, rows: u64) -> Vec<Value> {
    let big: Vec<String> = sim
        .counters()
        .into_iter()
        .filter(|c| c.rows >= rows)
        .map(|c| c.display_id)
        .collect();
    sim.campaigns()
        .into_iter()
        .filter(|c| big.contains(&id(c)))
        .collect()
}

/// A signup the server attributes `hours` in the past: late data.
async fn late_signup(
    sim: &Simulator,
    server: &linkrunner_sim::SimServer,
    campaign: &Value,
    n: usize,
    hours: f64,
) {
    sim.set_now(Some(
        Utc::now() - Duration::seconds((hours * 3600.0) as i64),
    ));
    signup(
        server,
        campaign,
        &format!("late-install-{n}"),
        &format!("u_late_{n}"),
    )
    .await;
    sim.set_now(None);
}

/// How many campaigns have no rows: their counters agree at 0, which earns no trust, so they are
/// read on every run.
fn empty(sim: &Simulator) -> u64 {
    sim.counters().iter().filter(|c| c.rows == 0).count() as u64
}

fn honest(seed: u64) -> SimConfig {
    SimConfig {
        counter_lie_rate: 0.0,
        ..SimConfig::small(seed)
    }
}

#[sqlx::test]
async fn late_rows_behind_every_kind_of_lying_counter_are_stored_by_the_next_run(pool: PgPool) {
    let (sim, server) = start(honest(61)).await;
    let config = sync_config(&server, "UTC");
    let campaigns = sim.campaigns().len() as u64;
    let targets = with_rows(&sim, 2);
    assert!(
        targets.len() >= 5,
        "the data set has five campaigns with rows"
    );
    let rows = |c: &Value| c["attributed_users"].as_u64().unwrap();
    let lies = [
        Counter::Zero,
        Counter::Frozen {
            value: rows(&targets[1]) / 2,
        },
        Counter::Above { extra: 3 },
        Counter::Lag { seconds: 600 },
    ];
    for (c, lie) in targets.iter().zip(lies) {
        assert!(sim.set_counter(&id(c), lie));
    }
    // A lagging counter shows its lag as a live campaign's does: a signup moments before a read
    // is not counted yet.
    signup(&server, &targets[3], "on-time-install", "u_on_time").await;
    sync::run(&config, &pool).await.unwrap();
    let trust = trusted(&pool).await;
    for c in &targets[..4] {
        assert!(!trust[&id(c)], "{} lies but is trusted", id(c));
    }
    let e = empty(&sim);
    assert_eq!(
        trust.values().filter(|t| **t).count() as u64,
        campaigns - 4 - e
    );

    // Trusted campaigns are still skipped; the four liars and the empty campaigns are read on
    // every run.
    let idle = sync::run(&config, &pool).await.unwrap();
    assert_eq!(
        (idle.totals.requests, idle.totals.users.campaigns_untrusted),
        (5 + e, 4 + e)
    );
    assert_eq!(idle.totals.users.campaigns_skipped, campaigns - 4 - e);

    // Late signups behind each liar (none of whose counters moves in step) and behind an
    // honest counter, which moves.
    for (n, c) in targets[..5].iter().enumerate() {
        late_signup(&sim, &server, c, n, 1.0 + n as f64 / 2.0).await;
    }
    let next = sync::run(&config, &pool).await.unwrap();
    assert_eq!(next.totals.users.rows_inserted, 5);
    assert_eq!(
        (
            next.totals.users.campaigns_untrusted,
            next.totals.users.campaigns_changed
        ),
        (4 + e, 1)
    );
    assert_exact(&pool, &sim).await;
}

#[sqlx::test]
async fn a_counter_that_starts_lying_loses_its_trust_and_is_read_from_then_on(pool: PgPool) {
    let (sim, server) = start(honest(62)).await;
    let config = sync_config(&server, "UTC");
    sync::run(&config, &pool).await.unwrap();
    for (campaign, trusted) in trusted(&pool).await {
        assert_eq!(trusted, truth(&sim, &campaign).rows > 0, "{campaign}");
    }
    let campaign = with_rows(&sim, 1).remove(0);
    let id = id(&campaign);

    // The counter starts counting installs that never signed up: it moves without rows.
    sim.set_counter(&id, Counter::Above { extra: 2 });
    let moved = sync::run(&config, &pool).await.unwrap();
    assert_eq!(moved.totals.users.campaigns_changed, 1);
    assert!(!trusted(&pool).await[&id]);

    // Then it freezes, and a late signup lands behind it: read because it is not trusted.
    let value = truth(&sim, &id).counter;
    sim.set_counter(&id, Counter::Frozen { value });
    late_signup(&sim, &server, &campaign, 1, 2.0).await;
    let next = sync::run(&config, &pool).await.unwrap();
    assert_eq!(
        (
            next.totals.users.rows_inserted,
            next.totals.users.campaigns_untrusted
        ),
        (1, 1 + empty(&sim))
    );
    assert_exact(&pool, &sim).await;

    // Agreeing again starts a probation of --full-scan-every before the counter is trusted.
    sim.set_counter(&id, Counter::Honest);
    let agreed = sync::run(&config, &pool).await.unwrap();
    let e = empty(&sim);
    assert_eq!(agreed.totals.users.campaigns_untrusted, 1 + e);
    let (lied, from): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "SELECT counter_lied_at, trusted_from FROM linkrunner.sync_checkpoints
         WHERE campaign_display_id = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(from, lied + config.full_scan_every);
    let again = sync::run(&config, &pool).await.unwrap();
    assert_eq!(
        (
            again.totals.users.campaigns_untrusted,
            again.totals.requests
        ),
        (1 + e, 2 + e)
    );
}

/// History synced from `--since` after a campaign's creation cannot be compared with an
/// all-time counter; one request for the total over the campaign's whole life stands in.
#[sqlx::test]
async fn a_campaign_synced_from_since_is_judged_by_its_whole_life_total(pool: PgPool) {
    let (sim, server) = start(honest(63)).await;
    let campaigns = sim.campaigns();
    let since = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let created = |c: &Value| {
        c["created_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    assert!(campaigns.iter().all(|c| created(c) < since));
    let frozen = with_rows(&sim, 2).remove(0);
    sim.set_counter(&id(&frozen), Counter::Frozen { value: 1 });

    let mut config = sync_config(&server, "UTC");
    config.since = Some(since);
    let backfill = sync::run(&config, &pool).await.unwrap();
    assert_eq!(
        backfill.totals.users.campaigns_requested,
        campaigns.len() as u64
    );
    let stored_before_since = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users WHERE attributed_at < '2026-10-01'",
    )
    .await;
    assert_eq!(stored_before_since, 0);
    let trust = trusted(&pool).await;
    // A whole-life total of 0 agrees with a counter at 0 and proves nothing, like an empty
    // campaign's.
    for c in &campaigns {
        let evidence = truth(&sim, &id(c)).rows > 0;
        assert_eq!(trust[&id(c)], evidence && id(c) != id(&frozen), "{}", id(c));
    }
    // The whole-life totals, not the stored rows, are what the counters were held against.
    let judged: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT campaign_display_id, rows_at_sync FROM linkrunner.sync_checkpoints")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (campaign, rows) in judged {
        assert_eq!(rows, Some(truth(&sim, &campaign).rows as i64), "{campaign}");
    }

    config.since = None;
    let idle = sync::run(&config, &pool).await.unwrap();
    // Each campaign read: its lookback, and its whole-life total (the stored history does not
    // reach its creation).
    let e = empty(&sim);
    assert_eq!(
        (idle.totals.users.campaigns_untrusted, idle.totals.requests),
        (1 + e, 1 + 2 * (1 + e))
    );
}

/// The issue's own trial: the simulator's default share of lying counters, many campaigns, late
/// signups over the last four hours; the next run stores every one.
#[sqlx::test]
async fn late_signups_behind_the_default_share_of_lying_counters_all_arrive(pool: PgPool) {
    // The first seed from 64 whose campaigns lie in every way.
    let kinds = |sim: &Simulator| {
        let mut kinds: Vec<String> = sim
            .counters()
            .iter()
            .map(|c| {
                serde_json::to_value(c.lie).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    let sim_config = (64..)
        .map(|seed| SimConfig {
            campaigns: 60,
            users: 3000,
            ..SimConfig::small(seed)
        })
        .find(|c| kinds(&Simulator::new(c.clone())).len() == 5)
        .unwrap();
    let (sim, server) = start(sim_config).await;
    let config = sync_config(&server, "UTC");
    let campaigns = sim.campaigns();
    // Live campaigns sign users up all the time, so a lagging counter shows its lag.
    for (n, c) in campaigns.iter().enumerate() {
        signup(
            &server,
            c,
            &format!("live-install-{n}"),
            &format!("u_live_{n}"),
        )
        .await;
    }
    sync::run(&config, &pool).await.unwrap();

    for n in 0..200 {
        let c = &campaigns[n * 7 % campaigns.len()];
        late_signup(&sim, &server, c, n, 4.0 * n as f64 / 200.0).await;
    }
    let next = sync::run(&config, &pool).await.unwrap();
    assert_eq!(next.totals.users.rows_inserted, 200);
    assert_exact(&pool, &sim).await;

    assert_eq!(kinds(&sim), ["above", "frozen", "honest", "lag", "zero"]);
}

/// `status` and `data_freshness` call a campaign current on the strength of its counter only
/// while that counter is trusted: a liar that could not be read stays as old as its last read.
#[sqlx::test]
async fn status_and_freshness_never_take_an_untrusted_counters_word(pool: PgPool) {
    let (sim, server) = start(honest(65)).await;
    let config = sync_config(&server, "UTC");
    let targets = with_rows(&sim, 2);
    let (liar, honest) = (id(&targets[0]), id(&targets[1]));
    sim.set_counter(&liar, Counter::Frozen { value: 1 });
    sync::run(&config, &pool).await.unwrap();
    let backfilled = Utc::now();

    // The liar's reads fail on the next run; the honest campaign is skipped on its counter.
    sim.set_faults(linkrunner_sim::Faults {
        failing_campaigns: vec![liar.clone()],
        ..Default::default()
    });
    let next = sync::run(&config, &pool).await;
    assert!(next.is_err(), "the liar's reads failed");

    let status =
        linkrunner_sync::commands::status::load(&Default::default(), &pool, 1, Duration::hours(1))
            .await
            .unwrap();
    let of = |id: &str| {
        status
            .campaigns
            .iter()
            .find(|c| c.display_id == id)
            .unwrap()
    };
    assert!(!of(&liar).counter_trusted && of(&honest).counter_trusted);
    assert!(of(&liar).checked_at.unwrap() < backfilled);
    assert!(of(&honest).checked_at.unwrap() > backfilled);
    assert_eq!(
        status.runs[0].count("campaigns_untrusted") as u64,
        1 + empty(&sim)
    );

    let freshness: Vec<(String, bool, DateTime<Utc>)> = sqlx::query_as(
        "SELECT campaign_display_id, counter_trusted, confirmed_at FROM linkrunner.data_freshness
         WHERE campaign_display_id = ANY($1)",
    )
    .bind([&liar, &honest])
    .fetch_all(&pool)
    .await
    .unwrap();
    for (campaign, trusted, confirmed) in freshness {
        assert_eq!(trusted, campaign == honest, "{campaign}");
        assert_eq!(confirmed > backfilled, campaign == honest, "{campaign}");
    }
}

/// Creates an empty campaign through the write API, as a launch does; its listing.
async fn launch(sim: &Simulator, server: &linkrunner_sim::SimServer, display_id: &str) -> Value {
    let body = serde_json::json!({
        "name": display_id.to_uppercase(),
        "custom_display_id": display_id,
        "deeplink": format!("https://go.example.org/offers/{display_id}"),
    });
    let created = reqwest::Client::new()
        .post(format!("{}/create-campaign", server.base_url()))
        .header("linkrunner-key", "sim-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let listed = sim.campaigns().into_iter().find(|c| id(c) == display_id);
    listed.unwrap()
}

/// A counter that reads 0 over an empty campaign agrees with its rows, and proves nothing: it
/// reads 0 for a campaign with activity too.
#[sqlx::test]
async fn a_campaign_empty_at_the_backfill_whose_counter_reads_0_forever_gets_its_rows_stored(
    pool: PgPool,
) {
    let (sim, server) = start(honest(66)).await;
    let config = sync_config(&server, "UTC");
    let campaign = launch(&sim, &server, "launch-day").await;
    assert!(sim.set_counter("launch-day", Counter::Zero));
    sync::run(&config, &pool).await.unwrap();
    assert!(!trusted(&pool).await["launch-day"], "trusted on 0 = 0");

    late_signup(&sim, &server, &campaign, 1, 2.0).await;
    signup(&server, &campaign, "launch-install", "u_launch").await;
    assert_eq!(truth(&sim, "launch-day").counter, 0);
    let next = sync::run(&config, &pool).await.unwrap();
    assert_eq!(next.totals.users.rows_inserted, 2);
    assert_exact(&pool, &sim).await;
    // Its counter still reads 0 beside two rows: read on every run from now on.
    assert!(!trusted(&pool).await["launch-day"]);
}

/// A lagging counter over a new campaign still reads 0 when the first signup lands seconds
/// after a run: the next run reads the campaign, since 0 = 0 earned no trust.
#[sqlx::test]
async fn a_first_signup_seconds_after_a_run_behind_a_counter_still_at_0_is_stored(pool: PgPool) {
    let (sim, server) = start(honest(67)).await;
    let config = sync_config(&server, "UTC");
    let campaign = launch(&sim, &server, "fresh-launch").await;
    assert!(sim.set_counter("fresh-launch", Counter::Lag { seconds: 600 }));
    sync::run(&config, &pool).await.unwrap();
    signup(&server, &campaign, "first-install", "u_first").await;
    assert_eq!(truth(&sim, "fresh-launch").counter, 0, "the counter lags");
    let next = sync::run(&config, &pool).await.unwrap();
    assert_eq!(next.totals.users.rows_inserted, 1);
    assert_exact(&pool, &sim).await;
}

/// A warehouse whose counters were trusted on 0 = 0 before the rule changed loses that trust
/// when migration 11 is applied, and its empty campaigns are read from the next run on.
#[sqlx::test(migrations = false)]
async fn an_upgrade_takes_away_trust_earned_on_a_zero_agreement(pool: PgPool) {
    let (sim, server) = start(honest(68)).await;
    let config = sync_config(&server, "UTC");
    sync::run(&config, &pool).await.unwrap();
    let e = empty(&sim);
    assert!(e > 0, "the data set has empty campaigns");
    // The state the earlier rule left: every agreeing counter trusted, the empty ones too, and
    // migration 11 not applied yet.
    sqlx::raw_sql(
        "UPDATE linkrunner.sync_checkpoints SET trusted_from = now() - interval '1 hour';
         DELETE FROM linkrunner.schema_migrations WHERE version = 20261207000011",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(trusted(&pool).await.values().all(|t| *t));
    let mut conn = pool.acquire().await.unwrap();
    linkrunner_sync::db::migrate(&mut conn, &Default::default())
        .await
        .unwrap();
    for (campaign, trusted) in trusted(&pool).await {
        assert_eq!(trusted, truth(&sim, &campaign).rows > 0, "{campaign}");
    }
    let idle = sync::run(&config, &pool).await.unwrap();
    assert_eq!(
        (idle.totals.users.campaigns_untrusted, idle.totals.requests),
        (e, 1 + e)
    );
}

/// `status` says why the last run read each campaign, and where each counter stands, in the dry
/// run's words: from the stored state alone, without asking the API.
#[sqlx::test]
async fn status_says_why_each_campaign_was_read(pool: PgPool) {
    let (sim, server) = start(honest(69)).await;
    let config = sync_config(&server, "UTC");
    launch(&sim, &server, "launch-day").await;
    let targets = with_rows(&sim, 2);
    let (moved, liar, still) = (&targets[0], id(&targets[1]), id(&targets[2]));
    sim.set_counter(&liar, Counter::Frozen { value: 1 });
    sync::run(&config, &pool).await.unwrap();
    signup(&server, moved, "moved-install", "u_moved").await;
    let next = sync::run(&config, &pool).await.unwrap();
    assert_eq!(next.totals.users.rows_inserted, 1);

    let status =
        linkrunner_sync::commands::status::load(&Default::default(), &pool, 1, Duration::hours(1))
            .await
            .unwrap();
    let of = |id: &str| {
        let c = status.campaigns.iter().find(|c| c.display_id == id);
        let c = c.unwrap();
        (c.counter, c.read_because.as_deref().unwrap_or("-"))
    };
    assert_eq!(of("launch-day"), ("no evidence", "no evidence yet"));
    assert_eq!(of(&liar), ("disagrees", "counter disagrees"));
    assert_eq!(of(&id(moved)), ("trusted", "counter moved"));
    assert_eq!(of(&still), ("trusted", "skip"));
    let table = linkrunner_sync::commands::status::render(&status);
    let line = table.lines().find(|l| l.starts_with("launch-day")).unwrap();
    assert!(line.contains("no evidence yet"), "{line}");
}
