//! The analysts' views and every example query in `sql/`, run against a database filled by a
//! real sync and checked against the simulator's own data, computed here from its JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::*;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use linkrunner_sim::{Faults, SimConfig, Simulator};
use linkrunner_sync::model::run::Outcome;
use linkrunner_sync::sync;
use serde_json::Value;
use sqlx::postgres::types::PgInterval;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row};

/// Zones with DST (New York, Berlin, Santiago where midnight can be skipped, Lord Howe's
/// half-hour change) and without (UTC, Kolkata's half-hour offset).
const ZONES: [&str; 6] = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Santiago",
];

/// One attributed user as the simulator serves it, read the way the views promise to read it.
#[derive(Clone, Debug)]
struct Signup {
    campaign: String,
    at: DateTime<Utc>,
    user_id: Option<String>,
    ad_channel: Option<String>,
    /// campaign_name, link and the seven ad fields, in the view's column order.
    texts: [Option<String>; 9],
    /// user_data name, email and phone.
    profile: [Option<String>; 3],
    installed_at: Option<DateTime<Utc>>,
    store_click_at: Option<DateTime<Utc>>,
    platform: Option<&'static str>,
}

const TEXT_COLUMNS: [&str; 9] = [
    "campaign_name",
    "link",
    "meta_ad_id",
    "ad_creative_id",
    "ad_creative_name",
    "ad_set_id",
    "ad_set_name",
    "publisher_platform",
    "platform_position",
];

/// Text as a column holds it once "" is read as NULL; non-strings as their JSON text.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(v?.as_str()?).ok()?;
    Some(parsed.with_timezone(&Utc))
}

/// The documented platform rule: iOS identifiers first, then Android ones.
fn platform(device: Option<&Value>) -> Option<&'static str> {
    let has = |key: &str| text(device.and_then(|d| d.get(key))).is_some();
    if has("idfv") || has("idfa") {
        Some("IOS")
    } else if has("android_id") || has("gaid") {
        Some("ANDROID")
    } else {
        None
    }
}

impl Signup {
    fn from_wire(row: &Value) -> Signup {
        let user = row.get("user_data");
        let field = |key: &str| user.and_then(|u| u.get(key));
        let user_id = match field("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Signup {
            campaign: row["campaign_display_id"].as_str().unwrap().to_string(),
            at: time(row.get("attributed_at")).expect("the simulator's rows have a time"),
            user_id,
            ad_channel: text(row.get("ad_channel")),
            texts: TEXT_COLUMNS.map(|k| text(row.get(k))),
            profile: ["name", "email", "phone"].map(|k| text(field(k))),
            installed_at: time(row.get("installed_at")),
            store_click_at: time(row.get("store_click_at")),
            platform: platform(field("device_data")),
        }
    }
}

/// A user's attributions in order: (time, campaign, ad channel).
type History = Vec<(DateTime<Utc>, String, Option<String>)>;

/// What the simulator holds, and what every view should therefore say.
struct Expected {
    signups: Vec<Signup>,
    campaigns: Vec<Value>,
}

impl Expected {
    fn of(sim: &Simulator) -> Expected {
        let signups: Vec<Signup> = sim
            .all_attributed_users()
            .iter()
            .map(Signup::from_wire)
            .collect();
        assert!(signups.len() > 100, "the simulator should hold rows");
        Expected {
            signups,
            campaigns: sim.campaigns(),
        }
    }

    fn campaign(&self, id: &str) -> &Value {
        let found = self.campaigns.iter().find(|c| c["display_id"] == id);
        found.unwrap_or_else(|| panic!("{id} is not a simulator campaign"))
    }

    fn of_campaign<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Signup> + 'a {
        self.signups.iter().filter(move |s| s.campaign == id)
    }

    /// Signups per (local day in `tz`, campaign, ad channel).
    fn days(&self, tz: Tz) -> BTreeMap<(NaiveDate, String, Option<String>), i64> {
        let mut out = BTreeMap::new();
        for s in &self.signups {
            let day = s.at.with_timezone(&tz).date_naive();
            *out.entry((day, s.campaign.clone(), s.ad_channel.clone()))
                .or_default() += 1;
        }
        out
    }

    /// Each user id's attributions, in order.
    fn histories(&self) -> BTreeMap<String, History> {
        let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for s in &self.signups {
            if let Some(id) = &s.user_id {
                let entry = (s.at, s.campaign.clone(), s.ad_channel.clone());
                out.entry(id.clone()).or_default().push(entry);
            }
        }
        out.values_mut().for_each(|h| h.sort());
        out
    }

    /// Users attributed more than once, with their attributions in order.
    fn reattributed(&self) -> BTreeMap<String, History> {
        let mut all = self.histories();
        all.retain(|_, h| h.len() > 1);
        all
    }
}

/// The three intervals of a signup, in microseconds.
fn intervals(s: &Signup) -> [Option<i64>; 3] {
    let span = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| {
        Some((to? - from?).num_microseconds().unwrap())
    };
    [
        span(s.store_click_at, s.installed_at),
        span(s.installed_at, Some(s.at)),
        span(s.store_click_at, Some(s.at)),
    ]
}

const MEASURES: [&str; 3] = ["click_to_install", "install_to_signup", "click_to_signup"];

/// Postgres' percentile_cont: linear interpolation between the two nearest ranks.
fn percentile_cont(sorted: &[i64], fraction: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = fraction * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (a, b) = (sorted[lo] as f64, sorted[hi] as f64);
    Some(a + (b - a) * (pos - lo as f64))
}

fn micros(i: PgInterval) -> i64 {
    assert_eq!(i.months, 0, "an interval between instants has no months");
    i64::from(i.days) * 86_400_000_000 + i.microseconds
}

/// A column by name, with the column in the panic message.
fn get<'r, T>(row: &'r PgRow, column: &str) -> T
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column)
        .unwrap_or_else(|e| panic!("column {column}: {e}"))
}

/// A database holding a full sync of the simulator with `config`.
async fn synced(pool: &PgPool, config: SimConfig) -> Expected {
    let (sim, server) = start(config).await;
    let report = sync::run(&sync_config(&server, "America/New_York"), pool)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Success);
    assert_exact(pool, &sim).await;
    Expected::of(&sim)
}

// ---- The example queries ----

/// Every `*.sql` file of `sql/`, by name, sorted.
fn example_queries() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no example queries in {}", dir.display());
    files
}

/// A leading comment that says something, then one SELECT (or WITH) statement.
fn assert_shape(name: &str, sql: &str) {
    let first = sql.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let comment = first.trim().strip_prefix("--").unwrap_or("");
    assert!(
        comment.split_whitespace().count() >= 3,
        "sql/{name} must start with a comment saying what it answers"
    );
    let code = without_comments(sql);
    let code = code.trim().trim_end_matches(';');
    let head = code.split_whitespace().next().unwrap_or("").to_uppercase();
    assert!(
        (head == "SELECT" || head == "WITH") && !code.contains(';'),
        "sql/{name} must be a single SELECT statement"
    );
}

/// The query without its `--` comments (the example queries have no `--` inside literals).
fn without_comments(sql: &str) -> String {
    let code: Vec<&str> = sql.lines().map(|l| l.split("--").next().unwrap()).collect();
    code.join("\n")
}

/// The one IANA zone written as a literal in the query.
fn zone_literal(sql: &str) -> Tz {
    let zones: Vec<Tz> = without_comments(sql)
        .split('\'')
        .skip(1)
        .step_by(2)
        .filter_map(|s| s.parse().ok())
        .collect();
    assert_eq!(zones.len(), 1, "expected one zone literal, found {zones:?}");
    zones[0]
}

#[sqlx::test]
async fn every_example_query_answers_what_the_simulator_holds(pool: PgPool) {
    let expected = synced(&pool, SimConfig::small(21)).await;
    for (name, sql) in example_queries() {
        assert_shape(&name, &sql);
        if name == "daily_signups_across_projects.sql" {
            // Reads two projects' schemas: run and checked in tests/projects.rs.
            continue;
        }
        let rows = sqlx::query(&sql)
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("sql/{name} failed: {e}"));
        eprintln!("sql/{name}: {} rows", rows.len());
        match name.as_str() {
            "daily_signups_per_campaign.sql" => per_campaign_days(&rows, &expected, &sql),
            "daily_signups_per_channel.sql" => per_channel_days(&rows, &expected),
            "time_to_signup.sql" => time_to_signup(&rows, &expected),
            "reattributed_users.sql" => reattributed(&rows, &expected),
            "campaign_performance_with_store_listings.sql" => performance(&rows, &expected),
            "data_freshness.sql" => freshness(&rows, &expected),
            "signups_by_platform.sql" => platforms(&rows, &expected),
            // Checked against a sync with look-ups in tests/sql_attribution.rs.
            "users_by_attribution_type.sql"
            | "signups_by_search_ads_keyword.sql"
            | "organic_share_of_app_users.sql"
            | "attributed_users_with_details.sql" => {}
            // Checked against a sync with --reporting in tests/reporting_sync.rs.
            "reporting_cost_per_signup_and_roas.sql"
            | "reporting_funnel.sql"
            | "reporting_signups_vs_stored.sql" => {}
            // Checked against posted webhook events in tests/it/reconcile.rs.
            "webhook_signups_by_status.sql"
            | "webhook_signup_findings.sql"
            | "webhook_delivery_per_campaign.sql"
            | "webhook_installs_vs_reporting.sql" => {}
            // A new file is at least run; give it a check of its own here.
            _ => eprintln!("sql/{name}: ran; no result check yet"),
        }
    }
}

fn per_campaign_days(rows: &[PgRow], expected: &Expected, sql: &str) {
    let tz = zone_literal(sql);
    let mut want: BTreeMap<(NaiveDate, String), i64> = BTreeMap::new();
    for ((day, campaign, _), n) in expected.days(tz) {
        *want.entry((day, campaign)).or_default() += n;
    }
    let mut utc: BTreeMap<(NaiveDate, String), i64> = BTreeMap::new();
    for ((day, campaign, _), n) in expected.days(Tz::UTC) {
        *utc.entry((day, campaign)).or_default() += n;
    }
    if tz != Tz::UTC {
        assert!(want != utc, "the data should tell {tz} days from UTC days");
    }
    let mut got: BTreeMap<(NaiveDate, String), i64> = BTreeMap::new();
    for r in rows {
        let campaign: String = get(r, "campaign_display_id");
        let name: Option<String> = get(r, "campaign_name");
        assert_eq!(
            name.as_deref(),
            expected.campaign(&campaign)["name"].as_str()
        );
        got.insert((get(r, "day"), campaign), get::<i64>(r, "signups"));
    }
    assert_same(
        &got,
        &want,
        &format!("signups per local day in {tz} and campaign"),
    );
}

fn per_channel_days(rows: &[PgRow], expected: &Expected) {
    let mut want: BTreeMap<(NaiveDate, Option<String>), i64> = BTreeMap::new();
    for ((day, _, channel), n) in expected.days(Tz::UTC) {
        *want.entry((day, channel)).or_default() += n;
    }
    let got: BTreeMap<(NaiveDate, Option<String>), i64> = rows
        .iter()
        .map(|r| ((get(r, "day"), get(r, "ad_channel")), get(r, "signups")))
        .collect();
    assert_eq!(got.len(), rows.len(), "one row per day and channel");
    assert_same(&got, &want, "signups per UTC day and ad channel");
}

fn time_to_signup(rows: &[PgRow], expected: &Expected) {
    let with_rows: BTreeSet<&str> = expected
        .signups
        .iter()
        .map(|s| s.campaign.as_str())
        .collect();
    assert_eq!(
        rows.len(),
        with_rows.len(),
        "one row per campaign with signups"
    );
    for r in rows {
        let campaign: String = get(r, "campaign_display_id");
        let mine: Vec<&Signup> = expected.of_campaign(&campaign).collect();
        assert_eq!(get::<i64>(r, "signups"), mine.len() as i64);
        for (m, measure) in MEASURES.iter().enumerate() {
            let mut values: Vec<i64> = mine.iter().filter_map(|s| intervals(s)[m]).collect();
            values.sort();
            let count: i64 = get(r, &format!("{measure}_count"));
            assert_eq!(count, values.len() as i64, "{campaign} {measure}");
            for (p, fraction) in [("p50", 0.5), ("p90", 0.9)] {
                let got = get::<Option<PgInterval>>(r, &format!("{measure}_{p}")).map(micros);
                let want = percentile_cont(&values, fraction);
                let close = match (got, want) {
                    (Some(g), Some(w)) => (g as f64 - w).abs() <= 2.0,
                    (g, w) => g.is_none() && w.is_none(),
                };
                assert!(
                    close,
                    "{campaign} {measure} {p}: {got:?} µs, expected {want:?}"
                );
            }
        }
    }
}

fn reattributed(rows: &[PgRow], expected: &Expected) {
    let want = expected.reattributed();
    let across = want
        .values()
        .filter(|h| h.iter().map(|e| &e.1).collect::<BTreeSet<_>>().len() > 1);
    assert!(across.count() > 0, "the data should reattribute users");
    let got: BTreeMap<String, &PgRow> = rows.iter().map(|r| (get(r, "user_id"), r)).collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "reattributed user ids"
    );
    for (user, history) in &want {
        let r = got[user];
        let path: Vec<&str> = history.iter().map(|e| e.1.as_str()).collect();
        let campaigns: BTreeSet<&str> = path.iter().copied().collect();
        assert_eq!(
            get::<i64>(r, "attributions"),
            history.len() as i64,
            "{user}"
        );
        assert_eq!(get::<i64>(r, "campaigns"), campaigns.len() as i64, "{user}");
        assert_eq!(
            get::<String>(r, "campaign_path"),
            path.join(" -> "),
            "{user}"
        );
        let (first, last) = (history[0].0, history[history.len() - 1].0);
        assert_eq!(get::<DateTime<Utc>>(r, "first_attributed_at"), first);
        assert_eq!(get::<DateTime<Utc>>(r, "last_attributed_at"), last);
        let gap = micros(get(r, "came_back_after"));
        assert_eq!(gap, (last - first).num_microseconds().unwrap(), "{user}");
    }
}

fn performance(rows: &[PgRow], expected: &Expected) {
    assert_eq!(rows.len(), expected.campaigns.len(), "one row per campaign");
    let histories = expected.histories();
    for r in rows {
        let id: String = get(r, "campaign_display_id");
        let c = expected.campaign(&id);
        assert_eq!(
            get::<Option<String>>(r, "campaign_name").as_deref(),
            c["name"].as_str()
        );
        for flag in ["active", "google", "meta"] {
            assert_eq!(
                get::<Option<bool>>(r, flag),
                c[flag].as_bool(),
                "{id} {flag}"
            );
        }
        assert!(!get::<bool>(r, "deleted"), "{id} is live");

        let mut listings: Vec<(String, Option<String>)> = c["store_listings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["store_listing_id"].as_str().unwrap().into(),
                    text(l.get("platform")),
                )
            })
            .collect();
        listings.sort();
        let ids: Vec<String> = get(r, "store_listing_ids");
        let platforms: Vec<Option<String>> = get(r, "store_listing_platforms");
        let (want_ids, want_platforms): (Vec<_>, Vec<_>) = listings.into_iter().unzip();
        assert_eq!(
            (ids, platforms),
            (want_ids, want_platforms),
            "{id} listings"
        );

        let mine: Vec<&Signup> = expected.of_campaign(&id).collect();
        let users: BTreeSet<&String> = mine.iter().filter_map(|s| s.user_id.as_ref()).collect();
        assert_eq!(get::<i64>(r, "signups"), mine.len() as i64, "{id} signups");
        assert_eq!(get::<i64>(r, "users"), users.len() as i64, "{id} users");
        let first = mine.iter().map(|s| s.at).min();
        let last = mine.iter().map(|s| s.at).max();
        assert_eq!(get::<Option<DateTime<Utc>>>(r, "first_signup_at"), first);
        assert_eq!(get::<Option<DateTime<Utc>>>(r, "last_signup_at"), last);

        let again = users.iter().filter(|u| histories[**u].len() > 1).count();
        // A signup whose user had an earlier attribution, in any campaign.
        let repeats = mine
            .iter()
            .filter(|s| {
                let Some(u) = &s.user_id else { return false };
                histories[u]
                    .first()
                    .is_some_and(|e| (e.0, &e.1) < (s.at, &s.campaign))
            })
            .count();
        assert_eq!(get::<i64>(r, "reattributed_users"), again as i64, "{id}");
        assert_eq!(get::<i64>(r, "reattributions"), repeats as i64, "{id}");
    }
}

fn freshness(rows: &[PgRow], expected: &Expected) {
    assert_eq!(rows.len(), expected.campaigns.len(), "one row per campaign");
    let mut finished = BTreeSet::new();
    for r in rows {
        let id: String = get(r, "campaign_display_id");
        let last = expected.of_campaign(&id).map(|s| s.at).max();
        let synced: Option<DateTime<Utc>> = get(r, "synced_until");
        let synced = synced.unwrap_or_else(|| panic!("{id} was never synced"));
        assert!(
            last.is_none_or(|t| t < synced),
            "{id}: rows after synced_until"
        );
        let behind = micros(get(r, "behind"));
        assert!(
            (0..3_600_000_000).contains(&behind),
            "{id} is {behind} µs behind"
        );
        assert_eq!(get::<Option<DateTime<Utc>>>(r, "last_signup_at"), last);
        assert!(!get::<bool>(r, "deleted"));
        let done: Option<DateTime<Utc>> = get(r, "last_success_finished_at");
        finished.insert(done.expect("the sync succeeded"));
    }
    assert_eq!(finished.len(), 1, "one last successful run");
}

fn platforms(rows: &[PgRow], expected: &Expected) {
    let mut want: BTreeMap<(String, Option<String>), i64> = BTreeMap::new();
    for s in &expected.signups {
        let key = (s.campaign.clone(), s.platform.map(String::from));
        *want.entry(key).or_default() += 1;
    }
    let kinds: BTreeSet<_> = want.keys().map(|k| k.1.clone()).collect();
    assert_eq!(
        kinds.len(),
        3,
        "the data should hold iOS, Android and unknown devices"
    );
    let got: BTreeMap<(String, Option<String>), i64> = rows
        .iter()
        .map(|r| {
            (
                (get(r, "campaign_display_id"), get(r, "platform")),
                get(r, "signups"),
            )
        })
        .collect();
    assert_same(&got, &want, "signups per campaign and platform");
}

// ---- The views themselves ----

#[sqlx::test]
async fn daily_signups_in_counts_local_days_in_any_zone(pool: PgPool) {
    let expected = synced(&pool, SimConfig::small(4)).await;
    let read = |rows: Vec<PgRow>| -> BTreeMap<(NaiveDate, String, Option<String>), i64> {
        rows.iter()
            .map(|r| {
                let key = (
                    get(r, "day"),
                    get(r, "campaign_display_id"),
                    get(r, "ad_channel"),
                );
                (key, get(r, "signups"))
            })
            .collect()
    };
    let utc = expected.days(Tz::UTC);
    for zone in ZONES {
        let tz: Tz = zone.parse().unwrap();
        let rows = sqlx::query("SELECT * FROM linkrunner.daily_signups_in($1)")
            .bind(zone)
            .fetch_all(&pool)
            .await
            .unwrap();
        let want = expected.days(tz);
        if tz != Tz::UTC {
            assert!(
                want != utc,
                "the data should tell {zone} days from UTC days"
            );
        }
        assert_same(
            &read(rows),
            &want,
            &format!("signups per local day in {zone}"),
        );
        // The bounded form reads only some days' rows, and counts them alike, at the edges too.
        let days: Vec<NaiveDate> = want.keys().map(|k| k.0).collect();
        let (first, last) = (days[days.len() / 3], days[days.len() * 2 / 3]);
        let rows = sqlx::query("SELECT * FROM linkrunner.daily_signups_in($1, $2, $3)")
            .bind(zone)
            .bind(first)
            .bind(last)
            .fetch_all(&pool)
            .await
            .unwrap();
        let within = want
            .iter()
            .filter(|(k, _)| (first..=last).contains(&k.0))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_same(
            &read(rows),
            &within,
            &format!("signups per local day in {zone}, {first} to {last}"),
        );
    }
    let rows = sqlx::query("SELECT * FROM linkrunner.daily_signups")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_same(&read(rows), &utc, "daily_signups (UTC days)");

    let unknown = sqlx::query("SELECT * FROM linkrunner.daily_signups_in('Mars/Olympus_Mons')")
        .fetch_all(&pool)
        .await;
    assert!(unknown.is_err(), "an unknown zone must fail, not fall back");
}

#[sqlx::test]
async fn attributed_users_clean_reads_empty_text_as_null_and_names_the_platform(pool: PgPool) {
    // Drift adds "" where null is meant, numbers as strings and missing fields.
    let config = SimConfig {
        faults: Faults {
            drift_rate: 0.3,
            ..Faults::default()
        },
        ..SimConfig::small(9)
    };
    let expected = synced(&pool, config).await;
    let empty = count(
        &pool,
        "SELECT count(*) FROM linkrunner.attributed_users
         WHERE '' IN (ad_channel, campaign_name, link, meta_ad_id, ad_creative_id,
                      ad_creative_name, ad_set_id, ad_set_name, publisher_platform)",
    )
    .await;
    assert!(
        empty > 0,
        "the raw table should hold \"\" for the view to clean"
    );

    type Clean = (
        String,
        DateTime<Utc>,
        Option<String>,
        Option<String>,
        Vec<Option<String>>,
        Vec<Option<String>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<String>,
    );
    let mut want: Vec<Clean> = expected
        .signups
        .iter()
        .map(|s| {
            (
                s.campaign.clone(),
                s.at,
                s.user_id.clone(),
                s.ad_channel.clone(),
                s.texts.to_vec(),
                s.profile.to_vec(),
                s.installed_at,
                s.store_click_at,
                s.platform.map(String::from),
            )
        })
        .collect();
    let rows = sqlx::query(
        "SELECT campaign_display_id, attributed_at, user_id, ad_channel,
                ARRAY[campaign_name, link, meta_ad_id, ad_creative_id, ad_creative_name,
                      ad_set_id, ad_set_name, publisher_platform, platform_position] AS texts,
                ARRAY[user_name, user_email, user_phone] AS profile,
                installed_at, store_click_at, platform
         FROM linkrunner.attributed_users_clean",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut got: Vec<Clean> = rows
        .iter()
        .map(|r| {
            (
                get(r, "campaign_display_id"),
                get(r, "attributed_at"),
                get(r, "user_id"),
                get(r, "ad_channel"),
                get(r, "texts"),
                get(r, "profile"),
                get(r, "installed_at"),
                get(r, "store_click_at"),
                get(r, "platform"),
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

#[sqlx::test]
async fn time_to_signup_gives_every_attribution_its_intervals(pool: PgPool) {
    let expected = synced(&pool, SimConfig::small(13)).await;
    let rows = sqlx::query(
        "SELECT campaign_display_id, attributed_at, user_id, click_to_install,
                install_to_signup, click_to_signup
         FROM linkrunner.time_to_signup",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    type Spans = (String, DateTime<Utc>, Option<String>, [Option<i64>; 3]);
    let mut got: Vec<Spans> = rows
        .iter()
        .map(|r| {
            let spans = MEASURES.map(|m| get::<Option<PgInterval>>(r, m).map(micros));
            (
                get(r, "campaign_display_id"),
                get(r, "attributed_at"),
                get(r, "user_id"),
                spans,
            )
        })
        .collect();
    let mut want: Vec<Spans> = expected
        .signups
        .iter()
        .map(|s| (s.campaign.clone(), s.at, s.user_id.clone(), intervals(s)))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len());
    assert!(want.iter().any(|w| w.3.iter().all(Option::is_some)));
    assert!(want.iter().any(|w| w.3.iter().all(Option::is_none)));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}
