//! `linkrunner-sync demo`: the whole job against the built-in simulator and a local Postgres.

use std::fmt::Write;

use anyhow::Context;
use chrono_tz::Tz;
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool, Row};

use crate::api::ClientSettings;
use crate::cli::DemoArgs;
use crate::config::{self, ReportingSettings, SyncConfig};
use crate::error::Failure;
use crate::model::run::RunReport;
use crate::model::time::local_date;
use crate::{db, sync};
use linkrunner_sim::{ReportingLimit, SimConfig, Simulator};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/linkrunner_demo";

pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    let timezone = args.timezone;
    let url = args
        .database_url
        .unwrap_or_else(|| SecretString::from(DEFAULT_URL));
    let options = db::connect_options(&url).map_err(Failure::Config)?;
    create_database_if_missing(&options.options).await?;
    let pool = db::connect(options, 8).await?;
    let sim = Simulator::new(SimConfig {
        campaigns: args.campaigns,
        users: args.users,
        // Ten Reporting API requests a second instead of one a minute, so the demo reads a
        // month of days at once.
        reporting_limit: Some(ReportingLimit {
            requests: 10,
            window: std::time::Duration::from_secs(1),
            retry_after_secs: 1,
        }),
        ..SimConfig::default()
    });
    let server = sim
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .context("starting the simulator")?;
    println!(
        "simulator: {} (seeded synthetic project)",
        server.base_url()
    );
    let config = demo_config(&server.base_url(), args.rps, timezone)?;
    let report = sync::run(&config, &pool).await?;
    print_report(&report);
    let landed = landed(&pool, timezone.name()).await;
    print!("{}", landed.context("reading what landed")?);
    server.shutdown();
    Ok(())
}

/// The job's settings for the simulator at `base_url`: its key, and retries patient enough for
/// the faults it injects.
fn demo_config(base_url: &str, rps: f64, timezone: Tz) -> Result<SyncConfig, Failure> {
    let api = ClientSettings {
        base_url: config::base_url(base_url).map_err(Failure::Config)?,
        api_key: SecretString::from(SimConfig::default().api_key),
        rps,
        timeout: std::time::Duration::from_secs(30),
        max_retries: 8,
        retry_min_delay: std::time::Duration::from_secs(1),
        retry_max_delay: std::time::Duration::from_secs(60),
    };
    let sim = SimConfig::default();
    let project = sim.reporting_timezone;
    Ok(SyncConfig {
        concurrency: 16,
        // The Reporting API's last month of the simulated data, at the demo simulator's pace.
        reporting: Some(ReportingSettings {
            timezone: project,
            since: Some(local_date(project, sim.end - chrono::Duration::days(30))),
            last: None,
            views: vec!["user_acquisition"],
            rpm: 600.0,
            max_requests: 1000,
            lookback_days: 7,
            refresh: chrono::Duration::hours(1),
        }),
        ..SyncConfig::with_defaults(api, timezone)
    })
}

fn print_report(report: &RunReport) {
    println!(
        "sync {}: {} campaigns, {} requests, {} rows read, {} new, {} changed in {:.1}s",
        report.outcome,
        report.totals.users.campaigns_synced,
        report.totals.requests,
        report.totals.users.rows_received,
        report.totals.users.rows_inserted,
        report.totals.users.rows_updated,
        report.seconds
    );
    let r = &report.totals.reporting;
    println!(
        "reporting: {} requests, {} days read, {} rows new, {} changed",
        r.requests, r.days, r.rows_inserted, r.rows_changed
    );
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), Failure> {
    let name = options
        .get_database()
        .unwrap_or("linkrunner_demo")
        .to_string();
    let admin = options.clone().database("postgres");
    let mut conn = admin
        .connect()
        .await
        .context("cannot connect to Postgres (is it running? scripts/demo starts it)")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .context("looking for the demo database")?;
    if !exists {
        // Identifiers cannot be bound; quote it as Postgres does.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut conn)
            .await
            .context("creating the demo database")?;
        println!("created database {name}");
    }
    conn.close().await.ok();
    Ok(())
}

/// Rows per table and a sample analyst query.
async fn landed(pool: &PgPool, timezone: &str) -> sqlx::Result<String> {
    let mut out = String::from("\nrows per table:\n");
    for table in [
        "campaigns",
        "store_listings",
        "campaign_store_listings",
        "attributed_users",
        "users",
        "rejected_rows",
        "sync_checkpoints",
        "sync_windows",
        "sync_runs",
        "reporting_daily",
        "reporting_days",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM linkrunner.{table}"))
            .fetch_one(pool)
            .await?;
        let _ = writeln!(out, "  linkrunner.{table:<24} {n:>8}");
    }
    let query = "SELECT c.display_id, c.name, count(a.*) AS signups,
                        count(DISTINCT a.user_id) AS users,
                        max(a.attributed_at AT TIME ZONE $1)::date AS last_signup_day
                 FROM linkrunner.campaigns c
                 JOIN linkrunner.attributed_users a ON a.campaign_display_id = c.display_id
                 GROUP BY c.display_id, c.name ORDER BY signups DESC LIMIT 5";
    let _ = writeln!(
        out,
        "\ntop campaigns by signups (days in {timezone}):\n  {}",
        query.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let rows = sqlx::query(query).bind(timezone).fetch_all(pool).await?;
    let _ = writeln!(
        out,
        "  {:<12} {:>8} {:>8}  {:<12} name",
        "campaign", "signups", "users", "last day"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<12} {:>8} {:>8}  {:<12} {}",
            r.get::<String, _>(0),
            r.get::<i64, _>(2),
            r.get::<i64, _>(3),
            r.get::<Option<chrono::NaiveDate>, _>(4)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            r.get::<Option<String>, _>(1).unwrap_or_default(),
        );
    }
    out.push_str(&costs(pool).await?);
    Ok(out)
}

/// A sample of the Reporting API's numbers: the campaigns that spent most over the days read.
async fn costs(pool: &PgPool) -> sqlx::Result<String> {
    let query = "SELECT campaign_display_id, sum(spend)::float8, sum(signups)::float8,
                        (sum(spend) / NULLIF(sum(signups), 0))::float8,
                        (sum(revenue) / NULLIF(sum(spend), 0))::float8
                 FROM linkrunner.reporting_campaign_days WHERE view = 'user_acquisition'
                 GROUP BY 1 ORDER BY 2 DESC NULLS LAST LIMIT 5";
    let mut out = format!(
        "\ncost per signup and ROAS, top spenders over the days read:\n  {}\n  {:<12} {:>10} {:>8} {:>10} {:>6}\n",
        query.split_whitespace().collect::<Vec<_>>().join(" "),
        "campaign",
        "spend",
        "signups",
        "per signup",
        "roas"
    );
    let rows = sqlx::query(query).fetch_all(pool).await?;
    let shown = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<12} {:>10} {:>8} {:>10} {:>6}",
            r.get::<String, _>(0),
            shown(r.get(1)),
            shown(r.get::<Option<f64>, _>(2)).trim_end_matches(".00"),
            shown(r.get(3)),
            shown(r.get(4)),
        );
    }
    Ok(out)
}
