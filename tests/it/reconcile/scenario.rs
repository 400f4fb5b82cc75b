//! The reconciliation tests' scenario: the simulator synced up to a fixed instant, a real
//! receiver, and the events posted to it, each with what the views should say of it.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{self, receiver};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use linkrunner_sim::{SimConfig, Simulator};
use linkrunner_sync::config::{ReportingSettings, SyncConfig};
use linkrunner_sync::model::run::Outcome;
use linkrunner_sync::sync;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub const KEY: &str = "reconcile-key-5d1c";
pub const KOLKATA: Tz = chrono_tz::Asia::Kolkata;
/// A campaign id no campaign has: what a `campaign_id` that is not the display_id looks like.
pub const NOT_A_DISPLAY_ID: &str = "cmp_8812";
/// A campaign the warehouse has never listed.
pub const UNLISTED: &str = "ZZunlisted";

/// Where the pull stops: the checkpoints' synced_until, so pending and covered follow it. An
/// instant no row of the simulator has (its rows include midnights): the API's `end` takes a
/// row at the very instant too.
pub fn until() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 31, 23, 47, 13).unwrap() + Duration::milliseconds(421)
}

/// When the earliest event was attributed: from here on the receiver counts as running.
pub fn since() -> DateTime<Utc> {
    until() - Duration::days(12)
}

/// An attributed user as the simulator serves it.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub campaign: String,
    pub at: DateTime<Utc>,
    pub user: Option<String>,
}

/// The user id the job stores for a row: `user_data.id` as text, when it says something.
pub fn user_of(row: &Value) -> Option<String> {
    match row.get("user_data").and_then(|u| u.get("id")) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A signup event the test posted, and what the view should say of it.
#[derive(Clone, Debug)]
pub struct SignupSent {
    pub campaign: Option<String>,
    pub user: Option<String>,
    pub at: DateTime<Utc>,
    pub gaid: Option<String>,
    pub idfa: Option<String>,
    pub deliveries: i32,
    pub status: &'static str,
    pub differs_in: Option<&'static str>,
    /// The stored row it stands for: (campaign, attributed_at).
    pub matched: Option<(String, DateTime<Utc>)>,
}

/// An install event the test posted.
#[derive(Clone, Debug)]
pub struct InstallSent {
    pub campaign: Option<String>,
    pub at: DateTime<Utc>,
    pub gaid: Option<String>,
    pub idfa: Option<String>,
    /// Whether a signup event of the same device, attributed at or after it, was sent.
    pub converted: bool,
}

/// What the database holds after the scenario, as the test made it.
pub struct Scenario {
    pub pool: PgPool,
    pub db_url: String,
    pub sim: Simulator,
    /// Every row the pull stored (the simulator's rows before `until`).
    pub stored: Vec<Pulled>,
    pub signups: Vec<SignupSent>,
    pub installs: Vec<InstallSent>,
    /// Each campaign's covered_from; synced_until is `until` for all.
    pub covered_from: BTreeMap<String, DateTime<Utc>>,
    pub lookback: Duration,
}

pub fn wire(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn signup_body(s: &SignupSent) -> Value {
    json!({
        "event_type": "signup", "user_id": s.user, "campaign_id": s.campaign,
        "campaign_name": "Reconciled", "network_name": "META", "ad_channel": "META",
        "attributed_on": wire(s.at), "installed_at": null, "store_click_at": null,
        "gaid": s.gaid, "idfa": s.idfa, "name": "Reconcile Person",
        "email": "reconcile@example.com", "phone": "+49 30 1234567",
        "additional_data": {"id": s.user}
    })
}

pub fn install_body(i: &InstallSent) -> Value {
    json!({
        "event_type": "install", "user_id": null, "campaign_id": i.campaign,
        "network_name": if i.campaign.is_some() { "META" } else { "ORGANIC" },
        "attributed_on": wire(i.at), "installed_at": wire(i.at), "gaid": i.gaid, "idfa": i.idfa
    })
}

/// The reporting settings: Kolkata days from the day before the receiver's first to the last
/// whole day before `until`.
pub fn reporting() -> ReportingSettings {
    ReportingSettings {
        timezone: KOLKATA,
        since: Some(day_in(since(), KOLKATA).pred_opt().unwrap()),
        last: Some(day_in(until(), KOLKATA).pred_opt().unwrap()),
        views: vec!["user_acquisition"],
        rpm: 6000.0,
        max_requests: 10_000,
        lookback_days: 7,
        refresh: Duration::hours(1),
    }
}

pub fn day_in(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// The first instant of a local day.
pub fn start_of(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap();
    tz.from_local_datetime(&midnight)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

/// The simulator synced up to `until` (with the Reporting API's days), the receiver started,
/// and the scenario's events posted: most pulled signups delivered, every third lost, one
/// delivered twice, one with its instant off by a second, one under a campaign id that is no
/// display_id; events the pull has not covered, or covered and not found, one without a user
/// id; installs with and without a signup of the same device.
pub async fn scenario(pool_options: PgPoolOptions, db: PgConnectOptions) -> Scenario {
    let pool = pool_options.connect_with(db.clone()).await.unwrap();
    let db_url = common::database_url(&db);
    let (sim, server) = common::start(SimConfig {
        reporting_limit: None,
        ..SimConfig::small(61)
    })
    .await;
    let config = SyncConfig {
        until: Some(until()),
        reporting: Some(reporting()),
        ..common::sync_config(&server, "UTC")
    };
    let report = sync::run(&config, &pool).await.unwrap();
    assert_eq!(report.outcome, Outcome::Success);

    let all: Vec<Pulled> = sim
        .all_attributed_users()
        .iter()
        .map(|r| Pulled {
            campaign: r["campaign_display_id"].as_str().unwrap().to_owned(),
            at: r["attributed_at"].as_str().unwrap().parse().unwrap(),
            user: user_of(r),
        })
        .collect();
    assert!(all.iter().all(|p| p.at != until()), "a row at until");
    let stored: Vec<Pulled> = all.iter().filter(|p| p.at < until()).cloned().collect();
    let in_db = common::count(&pool, "SELECT count(*) FROM linkrunner.attributed_users").await;
    assert_eq!(
        in_db,
        stored.len() as i64,
        "the pull stored every row before until"
    );
    let covered_from = checkpoints(&pool).await;

    // The pulled signups since the receiver began, with a user seen on no other row.
    let mut rows_of: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &all {
        if let Some(u) = &p.user {
            *rows_of.entry(u).or_default() += 1;
        }
    }
    let mut window: Vec<&Pulled> = stored
        .iter()
        .filter(|p| p.at >= since() + Duration::hours(2))
        .filter(|p| p.user.as_ref().is_some_and(|u| rows_of[u.as_str()] == 1))
        .filter(|p| covered_from.get(&p.campaign).is_some_and(|f| *f <= since()))
        .collect();
    window.sort_by_key(|p| (p.at, p.campaign.clone()));
    assert!(window.len() >= 15, "{} signups in the window", window.len());

    let exact = |p: &Pulled| SignupSent {
        campaign: Some(p.campaign.clone()),
        user: p.user.clone(),
        at: p.at,
        gaid: None,
        idfa: None,
        deliveries: 1,
        status: "matched",
        differs_in: None,
        matched: Some((p.campaign.clone(), p.at)),
    };
    let mut signups: Vec<SignupSent> = Vec::new();
    for (i, p) in window.iter().enumerate() {
        match i % 3 {
            2 => {} // lost: Linkrunner gave up on it
            _ => signups.push(exact(p)),
        }
    }
    // The first delivered one came twice; the second with its instant a second off; the third
    // under a campaign id that is not the display_id.
    signups[0].deliveries = 2;
    signups[1].at += Duration::seconds(1);
    (signups[1].status, signups[1].differs_in) = ("mismatch", Some("attributed_at"));
    signups[2].campaign = Some(NOT_A_DISPLAY_ID.into());
    (signups[2].status, signups[2].differs_in) = ("mismatch", Some("campaign"));
    // Two devices that signed up, by GAID and by IDFA.
    signups[3].gaid = Some("gaid-pair".into());
    signups[4].idfa = Some("idfa-pair".into());
    let (paired, paired_idfa) = (signups[3].clone(), signups[4].clone());

    let campaign = window[0].campaign.clone();
    let other = stored
        .iter()
        .map(|p| &p.campaign)
        .find(|c| **c != campaign)
        .unwrap()
        .clone();
    let unmatched = |campaign: &str, user: Option<&str>, at, status| SignupSent {
        campaign: Some(campaign.to_owned()),
        user: user.map(String::from),
        at,
        gaid: None,
        idfa: None,
        deliveries: 1,
        status,
        differs_in: None,
        matched: None,
    };
    let ms = Duration::milliseconds(317);
    signups.extend([
        // Not covered: after the pull's end, and a campaign never listed.
        unmatched(
            &campaign,
            Some("wh-after"),
            until() + Duration::hours(1),
            "pending",
        ),
        unmatched(
            UNLISTED,
            Some("wh-unlisted"),
            since() + Duration::days(2),
            "pending",
        ),
        // Covered and not found: long ago, and within the lookback the next run reads again.
        unmatched(
            &campaign,
            Some("wh-lost-row"),
            until() - Duration::days(5) + ms,
            "missing",
        ),
        unmatched(
            &campaign,
            Some("wh-late-row"),
            until() - Duration::days(1) + ms,
            "missing",
        ),
    ]);
    let mut without_user = unmatched(&campaign, None, until() - Duration::days(3), "incomplete");
    without_user.gaid = Some("gaid-without-user".into());
    signups.push(without_user);

    let install =
        |campaign: Option<&str>, at, gaid: Option<&str>, idfa: Option<&str>, converted| {
            InstallSent {
                campaign: campaign.map(String::from),
                at,
                gaid: gaid.map(String::from),
                idfa: idfa.map(String::from),
                converted,
            }
        };
    let installs = vec![
        // The receiver's first event.
        install(Some(&campaign), since(), Some("gaid-first"), None, false),
        install(
            paired.campaign.as_deref(),
            paired.at - Duration::hours(1),
            Some("gaid-pair"),
            None,
            true,
        ),
        // The same device installed again after its signup: no later signup.
        install(
            paired.campaign.as_deref(),
            paired.at + Duration::hours(1),
            Some("gaid-pair"),
            None,
            false,
        ),
        install(
            paired_idfa.campaign.as_deref(),
            paired_idfa.at - Duration::minutes(30),
            None,
            Some("idfa-pair"),
            true,
        ),
        install(
            None,
            since() + Duration::hours(44),
            Some("gaid-organic"),
            None,
            false,
        ),
        // 19:00 UTC is the next day in Kolkata.
        install(
            Some(&other),
            since() + Duration::hours(91),
            Some("gaid-alone"),
            None,
            false,
        ),
    ];

    let r = receiver::start(&db_url, KEY).await;
    for s in &signups {
        for _ in 0..s.deliveries {
            assert_eq!(r.post(&signup_body(s)).await, 200, "{s:?}");
        }
    }
    for i in &installs {
        assert_eq!(r.post(&install_body(i)).await, 200, "{i:?}");
    }
    r.stop().await;
    let events = common::count(&pool, "SELECT count(*) FROM linkrunner.webhook_events").await;
    assert_eq!(events, (signups.len() + installs.len()) as i64);

    Scenario {
        pool,
        db_url,
        sim,
        stored,
        signups,
        installs,
        covered_from,
        lookback: config.lookback,
    }
}

/// Each campaign's covered_from, every synced_until being `until`.
pub async fn checkpoints(pool: &PgPool) -> BTreeMap<String, DateTime<Utc>> {
    let mut out = BTreeMap::new();
    for (campaign, (from, to)) in common::checkpoints(pool).await {
        assert_eq!(to, until(), "{campaign} is synced until --until");
        out.insert(campaign, from);
    }
    out
}

impl Scenario {
    /// Whether the campaign's checkpoint covers the instant.
    pub fn covered(&self, campaign: Option<&str>, at: DateTime<Utc>) -> bool {
        campaign
            .and_then(|c| self.covered_from.get(c))
            .is_some_and(|from| *from <= at && at < until())
    }

    /// Whether the campaign's next run reads the instant: no earlier than synced_until less
    /// the lookback; None without a checkpoint.
    pub fn next_run_reads(&self, campaign: Option<&str>, at: DateTime<Utc>) -> Option<bool> {
        let known = campaign.is_some_and(|c| self.covered_from.contains_key(c));
        known.then(|| at >= until() - self.lookback)
    }

    /// The stored rows a signup event arrived for (exactly, or as its mismatch).
    pub fn delivered(&self) -> BTreeSet<(String, DateTime<Utc>)> {
        self.signups
            .iter()
            .filter_map(|s| s.matched.clone())
            .collect()
    }

    /// The scenario's pulled signups per (local day, campaign): (signups, with an event).
    pub fn delivery(&self, tz: Tz) -> BTreeMap<(NaiveDate, String), (i64, i64)> {
        let delivered = self.delivered();
        let mut out: BTreeMap<(NaiveDate, String), (i64, i64)> = BTreeMap::new();
        for p in self.stored.iter().filter(|p| p.user.is_some()) {
            if p.at < since() {
                continue;
            }
            let entry = out
                .entry((day_in(p.at, tz), p.campaign.clone()))
                .or_default();
            entry.0 += 1;
            entry.1 += i64::from(delivered.contains(&(p.campaign.clone(), p.at)));
        }
        out
    }

    /// The Reporting API's installs per (Kolkata day, campaign), as the simulator answers, on
    /// the days read from the receiver's first on.
    pub fn reported_installs(&self) -> BTreeMap<(NaiveDate, String), i64> {
        let settings = reporting();
        let first = day_in(since(), KOLKATA);
        let mut out = BTreeMap::new();
        for day in first
            .iter_days()
            .take_while(|d| *d <= settings.last.unwrap())
        {
            let d = day.to_string();
            let data = self
                .sim
                .reporting_campaigns(&[("from", &d), ("to", &d), ("limit", "100")])
                .unwrap();
            for c in data["campaigns"].as_array().unwrap() {
                let text: String = c["installs"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                let id = c["display_id"].as_str().unwrap().to_owned();
                out.insert((day, id), text.parse().unwrap());
            }
        }
        out
    }
}
