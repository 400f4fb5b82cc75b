//! Reconciling the webhooks with the pull, against a real Postgres: attributed users from a real
//! sync of the simulator up to a fixed instant (`--until`, so nothing here depends on the
//! clock), events posted to a real `linkrunner-sync receive`, and every reconciliation view,
//! function and example query held to what the test sent.

mod scenario;

use std::collections::{BTreeMap, BTreeSet};

use crate::common;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use scenario::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

/// `num / den` as Postgres' `round(numeric, 4)` writes it.
fn ratio(num: i64, den: i64) -> String {
    assert!(num >= 0 && den > 0);
    let scaled = (num * 20_000 + den) / (2 * den);
    format!("{}.{:04}", scaled / 10_000, scaled % 10_000)
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> T
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column)
        .unwrap_or_else(|e| panic!("column {column}: {e}"))
}

/// The example query `sql/{name}`, run.
async fn example(pool: &PgPool, name: &str) -> (String, Vec<PgRow>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join(name);
    let sql = std::fs::read_to_string(path).unwrap();
    let rows = sqlx::query(&sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("sql/{name}: {e}"));
    (sql, rows)
}

/// A finding of the example query: campaign id, user id, status and differs_in.
type Finding = (Option<String>, Option<String>, String, Option<String>);

/// One event as the view reads it: status, differs_in, matched row, the time difference in
/// milliseconds, covered, next_run_reads and deliveries.
type Judged = (
    String,
    Option<String>,
    Option<(String, DateTime<Utc>)>,
    Option<i64>,
    bool,
    Option<bool>,
    i32,
);

#[sqlx::test]
async fn each_signup_event_is_matched_pending_mismatched_or_missing(
    pool_options: PgPoolOptions,
    db: PgConnectOptions,
) {
    let s = scenario(pool_options, db).await;
    let rows = sqlx::query(
        "SELECT campaign_id, user_id, attributed_on, status, differs_in,
                matched_campaign_display_id, matched_attributed_at,
                (extract(epoch FROM time_difference) * 1000)::int8 AS difference_ms,
                covered, synced_until, next_run_reads, deliveries
         FROM linkrunner.webhook_signups_matched",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    let key = |c: Option<String>, u: Option<String>, at: DateTime<Utc>| (c, u, at);
    let mut got = BTreeMap::new();
    for r in &rows {
        let campaign: Option<String> = get(r, "matched_campaign_display_id");
        let at: Option<DateTime<Utc>> = get(r, "matched_attributed_at");
        let judged: Judged = (
            get(r, "status"),
            get(r, "differs_in"),
            campaign.zip(at),
            get(r, "difference_ms"),
            get(r, "covered"),
            get(r, "next_run_reads"),
            get(r, "deliveries"),
        );
        let k = key(
            get(r, "campaign_id"),
            get(r, "user_id"),
            get(r, "attributed_on"),
        );
        assert!(got.insert(k, judged).is_none(), "one row per event");
        let synced: Option<DateTime<Utc>> = get(r, "synced_until");
        assert!(synced.is_none_or(|t| t == until()));
    }
    let mut want = BTreeMap::new();
    for e in &s.signups {
        let difference = e.matched.as_ref().map(|m| (m.1 - e.at).num_milliseconds());
        let judged: Judged = (
            e.status.to_owned(),
            e.differs_in.map(String::from),
            e.matched.clone(),
            difference,
            s.covered(e.campaign.as_deref(), e.at),
            s.next_run_reads(e.campaign.as_deref(), e.at),
            e.deliveries,
        );
        want.insert(key(e.campaign.clone(), e.user.clone(), e.at), judged);
    }
    common::assert_same(&got, &want, "the signup events as matched");
    // The scenario holds every status, and both kinds of missing.
    let statuses: BTreeSet<&str> = s.signups.iter().map(|e| e.status).collect();
    assert_eq!(statuses.len(), 5, "{statuses:?}");
    let missing: BTreeSet<Option<bool>> = want
        .values()
        .filter(|j| j.0 == "missing")
        .map(|j| j.5)
        .collect();
    assert_eq!(missing, BTreeSet::from([Some(false), Some(true)]));

    // The example queries: events per campaign and status, and the findings.
    let (_, rows) = example(&s.pool, "webhook_signups_by_status.sql").await;
    let mut counts: BTreeMap<(Option<String>, String), (i64, i64)> = BTreeMap::new();
    for e in &s.signups {
        let entry = counts
            .entry((e.campaign.clone(), e.status.to_owned()))
            .or_default();
        entry.0 += 1;
        entry.1 += i64::from(e.deliveries);
    }
    let got: BTreeMap<(Option<String>, String), (i64, i64)> = rows
        .iter()
        .map(|r| {
            let k = (get(r, "campaign_id"), get(r, "status"));
            (k, (get(r, "events"), get(r, "deliveries")))
        })
        .collect();
    common::assert_same(&got, &counts, "sql/webhook_signups_by_status.sql");

    let (_, rows) = example(&s.pool, "webhook_signup_findings.sql").await;
    let got: Vec<Finding> = rows
        .iter()
        .map(|r| {
            let (c, u) = (get(r, "campaign_id"), get(r, "user_id"));
            (c, u, get(r, "status"), get(r, "differs_in"))
        })
        .collect();
    let mut findings: Vec<_> = s
        .signups
        .iter()
        .filter(|e| matches!(e.status, "missing" | "mismatch"))
        .collect();
    findings.sort_by_key(|e| (e.at, e.campaign.clone(), e.user.clone()));
    let want: Vec<Finding> = findings
        .iter()
        .map(|e| {
            let differs = e.differs_in.map(String::from);
            (
                e.campaign.clone(),
                e.user.clone(),
                e.status.to_owned(),
                differs,
            )
        })
        .collect();
    assert_eq!(got, want, "the findings, oldest first");
    assert_eq!(want.len(), 4);
}

/// The function's rows for `tz`: (day, campaign) -> (signups, with_event, without_event, ratio).
async fn delivery_rows(
    pool: &PgPool,
    sql: &str,
    tz: Option<&str>,
) -> BTreeMap<(NaiveDate, String), (i64, i64, i64, String)> {
    let mut query = sqlx::query(sql);
    if let Some(tz) = tz {
        query = query.bind(tz);
    }
    let rows = query.fetch_all(pool).await.unwrap();
    let mut out = BTreeMap::new();
    for r in &rows {
        let k = (get(r, "day"), get(r, "campaign_display_id"));
        let v = (
            get(r, "signups"),
            get(r, "with_event"),
            get(r, "without_event"),
            get(r, "ratio"),
        );
        assert!(out.insert(k, v).is_none(), "one row per day and campaign");
    }
    out
}

#[sqlx::test]
async fn the_delivery_ratio_counts_the_pulled_signups_whose_event_came(
    pool_options: PgPoolOptions,
    db: PgConnectOptions,
) {
    let s = scenario(pool_options, db).await;
    let want_in = |tz: Tz| -> BTreeMap<(NaiveDate, String), (i64, i64, i64, String)> {
        s.delivery(tz)
            .into_iter()
            .map(|(k, (n, with))| (k, (n, with, n - with, ratio(with, n))))
            .collect()
    };
    let lost: i64 = want_in(KOLKATA).values().map(|v| v.2).sum();
    let delivered = s.delivered().len() as i64;
    assert!(
        lost >= 5 && delivered >= 10,
        "{lost} lost, {delivered} delivered"
    );
    for zone in ["Asia/Kolkata", "America/Los_Angeles", "UTC"] {
        let tz: Tz = zone.parse().unwrap();
        let got = delivery_rows(
            &s.pool,
            "SELECT *, delivery_ratio::text AS ratio
             FROM linkrunner.daily_webhook_delivery_in($1)",
            Some(zone),
        )
        .await;
        common::assert_same(&got, &want_in(tz), zone);
        let with: i64 = got.values().map(|v| v.1).sum();
        assert_eq!(with, delivered, "{zone}: every delivered row counted once");
    }
    // Days before the receiver's first event are not counted, though rows were pulled then.
    assert!(s.stored.iter().any(|p| p.at < since()));

    let (sql, _) = example(&s.pool, "webhook_delivery_per_campaign.sql").await;
    assert!(sql.contains("'Asia/Kolkata'"));
    let wrapped = format!(
        "SELECT *, delivery_ratio::text AS ratio FROM ({}) q",
        sql.trim().trim_end_matches(';')
    );
    let got = delivery_rows(&s.pool, &wrapped, None).await;
    common::assert_same(
        &got,
        &want_in(KOLKATA),
        "sql/webhook_delivery_per_campaign.sql",
    );
}

/// One row of the installs function: install events, converted, install_to_signup, reporting
/// installs, events per reported install, reporting settled, whole day.
type InstallDay = (
    i64,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<bool>,
    bool,
);

async fn install_rows(
    pool: &PgPool,
    sql: &str,
    tz: Option<&str>,
) -> BTreeMap<(NaiveDate, Option<String>), InstallDay> {
    let wrapped = format!(
        "SELECT day, campaign_display_id, install_events, converted,
                install_to_signup::text AS conversion, reporting_installs::int8 AS reported,
                events_per_reported_install::text AS per_reported, reporting_settled, whole_day
         FROM ({}) q",
        sql.trim().trim_end_matches(';')
    );
    let mut query = sqlx::query(&wrapped);
    if let Some(tz) = tz {
        query = query.bind(tz);
    }
    let mut out = BTreeMap::new();
    for r in &query.fetch_all(pool).await.unwrap() {
        let k = (get(r, "day"), get(r, "campaign_display_id"));
        let v: InstallDay = (
            get(r, "install_events"),
            get(r, "converted"),
            get(r, "conversion"),
            get(r, "reported"),
            get(r, "per_reported"),
            get(r, "reporting_settled"),
            get(r, "whole_day"),
        );
        assert!(out.insert(k, v).is_none(), "one row per day and campaign");
    }
    out
}

#[sqlx::test]
async fn installs_convert_by_device_and_stand_beside_the_reporting_apis(
    pool_options: PgPoolOptions,
    db: PgConnectOptions,
) {
    let s = scenario(pool_options, db).await;
    let converted = s.installs.iter().filter(|i| i.converted).count();
    assert_eq!((s.installs.len(), converted), (6, 2));
    let want_in = |tz: Tz, reported: &BTreeMap<(NaiveDate, String), i64>| {
        let mut events: BTreeMap<(NaiveDate, Option<String>), (i64, i64)> = BTreeMap::new();
        for i in &s.installs {
            let e = events
                .entry((day_in(i.at, tz), i.campaign.clone()))
                .or_default();
            e.0 += 1;
            e.1 += i64::from(i.converted);
        }
        let keys: BTreeSet<(NaiveDate, Option<String>)> = events
            .keys()
            .cloned()
            .chain(reported.keys().map(|(d, c)| (*d, Some(c.clone()))))
            .collect();
        let mut out: BTreeMap<(NaiveDate, Option<String>), InstallDay> = BTreeMap::new();
        for (day, campaign) in keys {
            let (n, conv) = events
                .get(&(day, campaign.clone()))
                .copied()
                .unwrap_or((0, 0));
            let api = campaign
                .as_ref()
                .and_then(|c| reported.get(&(day, c.clone())))
                .copied();
            let row = (
                n,
                conv,
                (n > 0).then(|| ratio(conv, n)),
                api,
                api.filter(|a| *a > 0).map(|a| ratio(n, a)),
                // The days read are long settled.
                api.map(|_| true),
                start_of(day, tz) >= since(),
            );
            out.insert((day, campaign), row);
        }
        out
    };
    let sql = "SELECT * FROM linkrunner.daily_webhook_installs_in($1)";

    // In the project's timezone the Reporting API's days line up: its installs stand beside.
    let reported = s.reported_installs();
    assert!(
        reported.len() >= 8 * 10,
        "{} reporting rows",
        reported.len()
    );
    let got = install_rows(&s.pool, sql, Some("Asia/Kolkata")).await;
    let want = want_in(KOLKATA, &reported);
    common::assert_same(&got, &want, "Kolkata");
    // The day before the receiver's first was read from the Reporting API, and is left out.
    let before = day_in(since(), KOLKATA).pred_opt().unwrap();
    let read: i64 =
        sqlx::query_scalar("SELECT count(*) FROM linkrunner.reporting_daily WHERE day = $1")
            .bind(before)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert!(read > 0 && got.keys().all(|(d, _)| *d > before));
    // The zone written another way is still the project's.
    let lower = install_rows(&s.pool, sql, Some("asia/kolkata")).await;
    common::assert_same(&lower, &want, "asia/kolkata");

    // In another zone the days do not line up: the installs alone.
    let got = install_rows(&s.pool, sql, Some("UTC")).await;
    common::assert_same(&got, &want_in(Tz::UTC, &BTreeMap::new()), "UTC");
    let kolkata_days: BTreeSet<_> = want_in(KOLKATA, &BTreeMap::new()).into_keys().collect();
    assert_ne!(
        got.into_keys().collect::<BTreeSet<_>>(),
        kolkata_days,
        "the installs fall on other days in UTC"
    );

    let (sql, _) = example(&s.pool, "webhook_installs_vs_reporting.sql").await;
    assert!(sql.contains("'Asia/Kolkata'"));
    let got = install_rows(&s.pool, &sql, None).await;
    common::assert_same(&got, &want, "sql/webhook_installs_vs_reporting.sql");
}

/// Signups and those with an event on a Kolkata day of a campaign, as the function says.
async fn delivery_on(pool: &PgPool, day: NaiveDate, campaign: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT signups, with_event FROM linkrunner.daily_webhook_delivery_in('Asia/Kolkata')
         WHERE day = $1 AND campaign_display_id = $2",
    )
    .bind(day)
    .bind(campaign)
    .fetch_optional(pool)
    .await
    .unwrap()
    .unwrap_or((0, 0))
}

/// The views read stored keys and counts only: `forget` takes a person out of them, and no
/// personal column is among theirs.
#[sqlx::test]
async fn forget_takes_a_person_out_of_the_reconciliation(
    pool_options: PgPoolOptions,
    db: PgConnectOptions,
) {
    let s = scenario(pool_options, db).await;
    let gone = s
        .signups
        .iter()
        .find(|e| e.status == "matched")
        .unwrap()
        .clone();
    let (campaign, at) = gone.matched.clone().unwrap();
    let day = day_in(at, KOLKATA);
    let (signups, with) = s.delivery(KOLKATA)[&(day, campaign.clone())];
    assert_eq!(delivery_on(&s.pool, day, &campaign).await, (signups, with));

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_linkrunner-sync"));
    cmd.args(["forget", "--user-id", gone.user.as_deref().unwrap()])
        .env("DATABASE_URL", &s.db_url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    let out = common::output(cmd).await;
    assert!(out.status.success(), "{out:?}");

    let left = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM linkrunner.webhook_signups_matched WHERE user_id = $1",
    )
    .bind(&gone.user)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(
        left, 0,
        "the forgotten person's event is gone from the view"
    );
    assert_eq!(
        delivery_on(&s.pool, day, &campaign).await,
        (signups - 1, with - 1)
    );

    // No personal value is a column of the views and functions.
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = 'linkrunner' AND table_name = 'webhook_signups_matched'
         UNION ALL
         SELECT unnest(proargnames) FROM pg_proc
         WHERE proname IN ('daily_webhook_delivery_in', 'daily_webhook_installs_in')",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert!(columns.len() > 20, "{columns:?}");
    for personal in ["name", "email", "phone", "body", "additional_data"] {
        assert!(
            !columns.iter().any(|c| c.contains(personal)),
            "{personal}: {columns:?}"
        );
    }
    let shown: String = sqlx::query_scalar(
        "SELECT concat_ws(' ',
             (SELECT string_agg(m::text, ' ') FROM linkrunner.webhook_signups_matched m),
             (SELECT string_agg(d::text, ' ')
              FROM linkrunner.daily_webhook_delivery_in('UTC') d),
             (SELECT string_agg(i::text, ' ')
              FROM linkrunner.daily_webhook_installs_in('UTC') i))",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    for canary in [
        "Reconcile Person",
        "reconcile@example.com",
        "+49 30 1234567",
    ] {
        assert!(!shown.contains(canary), "{canary} shown");
    }
}
