//! The Reporting API in a run (`--reporting`): the days due, read page by page at the
//! reporting pace, each page committed with its day's progress. It runs in a task of its own
//! beside the sync's reads and goes on after the run lets the run lock go, holding only the
//! reporting lock: neither the reads nor the next run wait on its minutes.

use std::time::Duration as StdDuration;

use backon::{BackoffBuilder, ExponentialBuilder};
use std::fmt::Write;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::deadline::{wall_clock_after, Deadline};
use crate::api::reporting::{ReportPage, ReportQuery};
use crate::api::{ApiClient, ApiError};
use crate::config::ReportingSettings;
use crate::db::reporting::{self as store, DayRows, Progress};
use crate::db::{self, RunLock};
use crate::error::Failure;
use crate::model::report_days::{DayPlan, Due};
use crate::model::run::ReportingTotals;
use crate::sync::list;
use crate::sync::run::Run;
use crate::sync::stream::{Ended, Planning, Shared, Step, Stream, Synced};

mod days;

use days::{day_end, last_page, of_the_day};
pub(crate) use days::{day_plan, pages_of_day};

/// Failed requests in a row (5xx, lost connections, garbled bodies) that end the run's
/// reporting: each costs a minute of the limit, and the next run goes on from there.
const FAILURES_IN_A_ROW: u32 = 3;

/// What the Reporting API says while the project's billing account is suspended.
const BILLING_SUSPENDED: u16 = 402;

/// The Reporting API stream (`--reporting`).
pub(crate) struct Reporting(pub ReportingSettings);

impl Stream for Reporting {
    fn prepare<'a>(&'a self, run: &'a Run, conn: &'a mut sqlx::PgConnection) -> Step<'a, ()> {
        Box::pin(check_timezone(run, conn, &self.0))
    }

    fn plan<'a>(&'a self, plan: &'a Planning<'a>) -> Step<'a, String> {
        Box::pin(plan_reporting(plan, &self.0))
    }

    /// Reads in a task of its own, which goes on after the run lock is let go.
    fn sync<'a>(&'a self, shared: &'a Shared<'a>) -> Synced<'a> {
        let created = shared
            .listed
            .campaigns
            .iter()
            .map(|c| c.created_at)
            .collect();
        let (run, settings) = (shared.run.clone(), self.0.clone());
        Synced::Beyond(tokio::spawn(
            async move {
                let (totals, result) = read(run, settings, created).await;
                Ended::new(move |t| t.reporting = totals, result)
            }
            .in_current_span(),
        ))
    }
}

/// What reporting came to when it made no request, and why.
fn nothing(result: Result<(), Failure>) -> (ReportingTotals, Result<(), Failure>) {
    (ReportingTotals::default(), result)
}

/// Reads the days due, records the figures, and returns them with the outcome.
async fn read(
    run: Run,
    settings: ReportingSettings,
    created: Vec<Option<DateTime<Utc>>>,
) -> (ReportingTotals, Result<(), Failure>) {
    let schema = &run.config.schema;
    let halt = run.halt.child_token();
    let lock = match db::try_lock_reporting(&run.pool, schema, halt.clone()).await {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            tracing::info!("another run is reading the Reporting API; none this run");
            return nothing(Ok(()));
        }
        Err(e) => return nothing(Err(e.into())),
    };
    let mut reader = Reader::new(&run, &settings, halt);
    let result = reader.read_due(&lock, &created).await.and_then(|()| {
        match reader.set_aside {
            0 => Ok(()),
            n => Err(Failure::Partial(format!(
                "{n} Reporting API items could not be stored and were kept in {}.rejected_rows (run {}); the rest of their days was stored",
                schema.name(),
                run.run_id
            ))),
        }
    });
    reader.deadline.end();
    let totals = reader.totals;
    // Stopped short by its deadline or a long Retry-After: a failure only when the API was
    // failing; either way the ledger says why.
    let (result, stopped) = match (result, reader.stopped) {
        (Ok(()), Some(stop)) if stop.failing => (Err(Failure::Partial(stop.why)), None),
        (Ok(()), Some(stop)) => (Ok(()), Some(stop.why)),
        (result, _) => (result, None),
    };
    let mut totals = totals;
    totals.error = result.as_ref().err().map(Failure::one_line).or(stopped);
    let recorded = match lock.live_session().await {
        Ok(mut conn) => crate::db::state::record_figures(schema, &mut conn, run.run_id, &totals)
            .await
            .map_err(|e| Failure::database(e, "recording the reporting figures")),
        Err(e) => Err(e.into()),
    };
    lock.release().await;
    tracing::info!(
        requests = totals.requests,
        rate_limited = totals.rate_limited,
        days = totals.days,
        pages = totals.pages,
        inserted = totals.rows_inserted,
        changed = totals.rows_changed,
        unparsed = totals.unparsed,
        days_left = totals.days_left,
        "reporting finished"
    );
    if totals.requests > 0 && totals.rate_limited == totals.requests {
        tracing::warn!(
            requests = totals.requests,
            "every Reporting API request was refused with 429: another client may be spending this key's minute"
        );
    }
    if totals.unparsed > 0 {
        tracing::warn!(
            values = totals.unparsed,
            "Reporting API values that are not numbers in the documented form are NULL, named in `unparsed` and kept in `raw`"
        );
    }
    (totals, result.and(recorded))
}

/// The Reporting API's days due, and what they cost at the reporting pace.
async fn plan_reporting(
    plan: &Planning<'_>,
    settings: &ReportingSettings,
) -> Result<String, Failure> {
    let Planning {
        config,
        pool,
        listed,
    } = plan;
    let created: Vec<_> = listed.iter().map(|c| c.created_at).collect();
    let Some(plan) = day_plan(settings, &created, Utc::now(), config.rescan) else {
        return Ok("reporting: the project has no campaigns; no days to read\n".into());
    };
    let schema = &config.schema;
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| Failure::database(e, "connecting"))?;
    let exists = crate::db::state::table_exists(&mut *conn, &schema.table("reporting_pace"))
        .await
        .map_err(|e| Failure::database(e, "reading the schema"))?;
    let other = match exists {
        true => other_timezone(schema, &mut conn, settings, config.rescan).await?,
        false => None,
    };
    // Before the schema exists, or when the days were read in another zone, every day is read
    // from its first page.
    let read = (exists && other.is_none()).then_some(&mut *conn);
    let due = days_due(schema, read, &plan, &settings.views).await?;
    let pages: Vec<u64> = due
        .iter()
        .map(|(_, d)| pages_of_day(settings.timezone, d.day, &created))
        .collect();
    let requests: u64 = due
        .iter()
        .zip(&pages)
        .map(|((_, d), pages)| pages.saturating_sub(u64::from(d.page) - 1).max(1))
        .sum();
    let recent = due.iter().filter(|(_, d)| d.recent(&plan)).count();
    let mut out = String::new();
    if let Some(other) = other {
        let _ = writeln!(
            out,
            "reporting: the days read in {other} are read again in {}",
            settings.timezone.name()
        );
    }
    let _ = writeln!(
        out,
        "reporting: {} days due ({recent} recent, {} older) from {} to {} in {}; about {requests} requests, {:.0} min at {} a minute; this run makes at most {}, so about {} runs",
        due.len(),
        due.len() - recent,
        plan.first,
        plan.last.min(plan.today),
        settings.timezone.name(),
        requests as f64 / settings.rpm,
        settings.rpm,
        settings.max_requests,
        requests.div_ceil(u64::from(settings.max_requests)),
    );
    for ((view, d), pages) in due.iter().zip(&pages).take(10) {
        let _ = writeln!(
            out,
            "  {} {view:<16} page {} of about {pages}",
            d.day, d.page
        );
    }
    if due.len() > 10 {
        let _ = writeln!(out, "  … and {} more days", due.len() - 10);
    }
    Ok(out)
}

/// Refuses a `--reporting-timezone` other than the one the recorded days were read in: their
/// days would be another calendar's. With `--rescan` those days are marked unread, to be read
/// again in the new zone.
pub(crate) async fn check_timezone(
    run: &Run,
    conn: &mut sqlx::PgConnection,
    settings: &ReportingSettings,
) -> Result<(), Failure> {
    let schema = &run.config.schema;
    let Some(other) = other_timezone(schema, conn, settings, run.config.rescan).await? else {
        return Ok(());
    };
    let zone = settings.timezone.name();
    let unread = store::unread_other_timezones(schema, conn, zone)
        .await
        .map_err(|e| Failure::database(e, "marking the reporting days unread"))?;
    tracing::warn!(days = unread, from = %other, to = zone, "reporting days read in another timezone are read again");
    Ok(())
}

/// The zone recorded days were read in when it is not `--reporting-timezone` and `rescan`
/// reads them again; refused without `rescan`.
pub(crate) async fn other_timezone(
    schema: &db::Schema,
    conn: &mut sqlx::PgConnection,
    settings: &ReportingSettings,
    rescan: bool,
) -> Result<Option<String>, Failure> {
    let zone = settings.timezone.name();
    let other = store::other_timezone(schema, conn, zone)
        .await
        .map_err(|e| Failure::database(e, "reading the reporting days"))?;
    match other {
        Some(other) if !rescan => Err(Failure::Config(format!(
            "the stored reporting days were read in {other}, not --reporting-timezone {zone}; if the project's timezone changed, run once with --rescan to read them again in {zone}"
        ))),
        other => Ok(other),
    }
}

/// The days due of every view, in the order they are read: by what `reporting_days` holds,
/// or, without a connection, as if no day were read yet.
pub(crate) async fn days_due(
    schema: &db::Schema,
    mut conn: Option<&mut sqlx::PgConnection>,
    plan: &DayPlan,
    views: &[&'static str],
) -> Result<Vec<(&'static str, Due)>, Failure> {
    let mut due = Vec::new();
    // A day's `read_at` is the database's time: its age is measured by the same clock.
    let plan = match conn.as_deref_mut() {
        Some(conn) => &DayPlan {
            now: store::database_now(conn)
                .await
                .map_err(|e| Failure::database(e, "reading the database's clock"))?,
            ..*plan
        },
        None => plan,
    };
    for view in views {
        let known = match conn.as_deref_mut() {
            Some(conn) => store::days(schema, conn, view)
                .await
                .map_err(|e| Failure::database(e, "reading the reporting days"))?,
            None => Default::default(),
        };
        due.extend(plan.due(&known).into_iter().map(|d| (*view, d)));
    }
    Ok(days::in_order(plan, due))
}

/// Why reporting stopped before the days due were read, other than its budget of requests.
struct Stopped {
    why: String,
    /// The API was failing (no answer, errors) when it stopped.
    failing: bool,
}

/// One run's reading: its pace, its budget of requests, and its figures.
struct Reader<'a> {
    run: &'a Run,
    settings: &'a ReportingSettings,
    /// Cancelled on a signal, or when the reporting lock is lost.
    halt: CancellationToken,
    /// `--reporting-time` from the start: then every wait and request of reporting ends.
    deadline: Deadline,
    /// The run's client under that deadline.
    api: ApiClient,
    stopped: Option<Stopped>,
    /// No request before this: a period after the last answer (the server counted its request
    /// before it answered, so a period from the answer is a period at the server too, whatever
    /// the latency), a `Retry-After`, a backoff.
    not_before: Instant,
    /// Delays after failed requests, from the first; none while requests succeed.
    backoff: Option<backon::ExponentialBackoff>,
    failing: u32,
    /// Items kept in `rejected_rows` rather than stored.
    set_aside: u64,
    /// Some request of this run was answered with a page.
    answered: bool,
    totals: ReportingTotals,
}

impl<'a> Reader<'a> {
    fn new(run: &'a Run, settings: &'a ReportingSettings, halt: CancellationToken) -> Self {
        let deadline = Deadline::new(run.config.reporting_time, &halt);
        deadline.start();
        Reader {
            run,
            settings,
            api: run.api.clone().with_deadline(deadline.clone()),
            deadline,
            stopped: None,
            halt,
            not_before: Instant::now(),
            backoff: None,
            failing: 0,
            set_aside: 0,
            answered: false,
            totals: ReportingTotals::default(),
        }
    }

    /// Reads the days due, until none is left or the run's requests are spent.
    async fn read_due(
        &mut self,
        lock: &RunLock,
        created: &[Option<DateTime<Utc>>],
    ) -> Result<(), Failure> {
        let schema = &self.run.config.schema;
        let Some(plan) = day_plan(self.settings, created, Utc::now(), self.run.config.rescan)
        else {
            tracing::info!("the project has no campaigns: no reporting days to read");
            return Ok(());
        };
        let due = {
            let mut conn = lock.live_session().await?;
            let due = days_due(schema, Some(&mut conn), &plan, &self.settings.views).await?;
            let wait = store::wait_before_request(schema, &mut conn, self.settings.period())
                .await
                .map_err(|e| Failure::database(e, "reading the reporting pace"))?;
            self.not_before = Instant::now() + wait;
            due
        };
        tracing::info!(
            days_due = due.len(),
            first = %plan.first,
            timezone = self.settings.timezone.name(),
            "reporting started"
        );
        for (i, (view, day)) in due.iter().enumerate() {
            let left = (due.len() - i) as u64;
            match self.read_day(lock, view, *day, &plan).await {
                Ok(true) => self.totals.days += 1,
                Ok(false) => {
                    self.totals.days_left = left;
                    break;
                }
                Err(e) => {
                    self.totals.days_left = left;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Reads a day from its page due to its last; false when the run's requests ran out first.
    async fn read_day(
        &mut self,
        lock: &RunLock,
        view: &'static str,
        due: Due,
        plan: &DayPlan,
    ) -> Result<bool, Failure> {
        let timezone = self.settings.timezone;
        let end = day_end(timezone, due.day);
        let (mut page, mut pass_total) = (due.page, due.pass_total);
        loop {
            let query = ReportQuery {
                from: due.day,
                to: due.day,
                view,
                page: u64::from(page),
                memory: self.run.config.memory_budget,
            };
            let Some(answer) = self.ask(lock, &query).await? else {
                return Ok(false);
            };
            let moved = page > 1 && answer.total.is_some() && answer.total != pass_total;
            if page == 1 {
                pass_total = answer.total;
            }
            let progress = if moved {
                // A campaign may have moved across a page edge: the pass starts again.
                tracing::warn!(
                    day = %due.day,
                    view,
                    "the campaign list changed while the day was read page by page; reading it again from its first page"
                );
                Progress::Next {
                    page: 1,
                    total: None,
                }
            } else if last_page(&answer, page, end) {
                Progress::Read {
                    settled: plan.settles(due.day),
                }
            } else {
                Progress::Next {
                    page: page + 1,
                    total: pass_total,
                }
            };
            let rows = of_the_day(answer.rows, &answer.campaigns, end);
            self.totals.unparsed += rows.iter().map(|r| r.unparsed.len() as u64).sum::<u64>();
            let day_rows = DayRows {
                day: due.day,
                view,
                timezone: timezone.name(),
                currency: answer.currency.as_deref(),
                run_id: self.run.run_id,
                rows: &rows,
                set_aside: &answer.set_aside,
            };
            let schema = &self.run.config.schema;
            let stored = store::commit_page(
                schema,
                &mut *lock.live_session().await?,
                &day_rows,
                progress,
            )
            .await
            .map_err(|e| Failure::database(e, "storing a page of the Reporting API"))?;
            self.totals.pages += 1;
            self.set_aside += stored.set_aside;
            self.totals.rows_inserted += stored.inserted;
            self.totals.rows_changed += stored.changed;
            tracing::debug!(day = %due.day, view, page, rows = rows.len(), ?progress, "reporting page stored");
            match progress {
                Progress::Read { .. } => return Ok(true),
                Progress::Next { page: next, total } => (page, pass_total) = (next, total),
            }
        }
    }

    /// Asks for a page at the reporting pace, again after a 429 or a passing failure; None once
    /// the run's requests are spent or reporting's time is up ([`Reader::stopped`] says why).
    async fn ask(
        &mut self,
        lock: &RunLock,
        query: &ReportQuery,
    ) -> Result<Option<ReportPage>, Failure> {
        loop {
            if self.totals.requests >= u64::from(self.settings.max_requests) {
                return Ok(None);
            }
            if !self.wait_turn().await? {
                return Ok(None);
            }
            // Recorded before the request, should the run die waiting for its answer, and again
            // once it is answered.
            self.mark_request(lock).await?;
            self.totals.requests += 1;
            let answer = self.api.reporting_page(query).await;
            if !matches!(answer, Err(ApiError::Stopped)) {
                self.not_before = self.not_before.max(Instant::now() + self.settings.period());
                self.mark_request(lock).await?;
            }
            match answer {
                Ok(page) => {
                    self.failing = 0;
                    self.answered = true;
                    self.backoff = None;
                    return Ok(Some(page));
                }
                // Asking again brings the same page: the day is left unread for the next run.
                Err(e @ (ApiError::Protocol(_) | ApiError::TooLarge { .. })) => {
                    return Err(Failure::Partial(format!(
                        "{e}: the page of {} ({}) was refused unread; reporting stopped, the signup sync went on, and the next run asks for the day again",
                        query.from, query.view
                    )))
                }
                Err(e) => {
                    if !self.refused(e)? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Waits for the pace and for any wait the server or a failure asked for; false, at once,
    /// when that wait would end past reporting's deadline, or when the deadline comes first.
    async fn wait_turn(&mut self) -> Result<bool, Failure> {
        let wait = self.not_before.saturating_duration_since(Instant::now());
        if !self.deadline.token().is_cancelled() && !self.deadline.outlasted_by(wait) {
            tokio::select! {
                biased;
                () = self.halt.cancelled() => return Err(Failure::Interrupted),
                () = self.deadline.token().cancelled() => {}
                () = tokio::time::sleep_until(self.not_before) => return Ok(true),
            }
        }
        if self.halt.is_cancelled() {
            return Err(Failure::Interrupted);
        }
        self.out_of_time(self.failing > 0, None);
        Ok(false)
    }

    /// Ends reporting for the run at its deadline, with one line; `cut` is the error of a
    /// request the deadline cut short.
    fn out_of_time(&mut self, failing: bool, cut: Option<&str>) {
        let why = format!(
            "reporting stopped {:?} after it started (--reporting-time){}; the days left are read by the next run",
            self.deadline.span(),
            match cut {
                Some(cut) => format!(", {cut}"),
                None if failing => ", the Reporting API failing".to_owned(),
                None => String::new(),
            }
        );
        tracing::warn!("{why}");
        self.stopped = Some(Stopped { why, failing });
    }

    /// Records in the database that a request goes out, or was answered, now: the next run
    /// paces its first request from there.
    async fn mark_request(&self, lock: &RunLock) -> Result<(), Failure> {
        let schema = &self.run.config.schema;
        store::mark_request(schema, &mut *lock.live_session().await?)
            .await
            .map_err(|e| Failure::database(e, "recording the reporting pace"))
    }

    /// What a refused request comes to: Ok(true) when it is worth asking again, Ok(false) when
    /// reporting stops for the run ([`Reader::stopped`] says why).
    fn refused(&mut self, e: ApiError) -> Result<bool, Failure> {
        match e {
            ApiError::RateLimited { retry_after } => {
                self.totals.rate_limited += 1;
                let wait = retry_after.unwrap_or(StdDuration::from_secs(60));
                if self.deadline.outlasted_by(wait) {
                    // Sleeping would only hold the process: the next run asks after it.
                    let why = format!(
                        "the Reporting API asked to wait {} s (HTTP 429 Retry-After), longer than reporting may go on (--reporting-time {:?}); no more reporting this run; try again after {}",
                        wait.as_secs(),
                        self.deadline.span(),
                        wall_clock_after(wait).format("%Y-%m-%dT%H:%M:%SZ")
                    );
                    tracing::warn!("{why}");
                    self.stopped = Some(Stopped {
                        why,
                        failing: false,
                    });
                    return Ok(false);
                }
                self.not_before = self.not_before.max(Instant::now() + wait);
                tracing::info!(
                    wait_s = wait.as_secs_f64(),
                    "the Reporting API asked to wait (HTTP 429)"
                );
                Ok(true)
            }
            ApiError::Unauthorized { .. } => {
                // The key is refused: the sync's reads stop too.
                self.run.halt.cancel();
                Err(list::api_failure(e))
            }
            ApiError::Rejected { status, .. } if status == BILLING_SUSPENDED => {
                Err(Failure::Partial(
                    "Linkrunner refused the Reporting API: the project's billing account is suspended (HTTP 402); no reporting this run, the signup sync went on; settle the account in the Linkrunner dashboard".into(),
                ))
            }
            ApiError::Rejected { status, message } => Err(Failure::Config(format!(
                "the Reporting API refused the job's request (HTTP {status}: {message}): a bug in this job or a change in the API; reporting stopped"
            ))),
            ApiError::NotFound => Err(Failure::Config(
                "there is no Reporting API at this base URL (GET /reporting/campaigns answered 404); check LINKRUNNER_BASE_URL".into(),
            )),
            ApiError::Stopped if self.halt.is_cancelled() => Err(Failure::Interrupted),
            ApiError::Stopped => {
                // Failing unless an answer came and the last attempt did not fail: a healthy
                // API is never left waiting this long for its first answer.
                let failing = self.failing > 0 || !self.answered;
                self.out_of_time(failing, Some("a request cut short without an answer"));
                Ok(false)
            }
            e => {
                self.failing += 1;
                if self.failing >= FAILURES_IN_A_ROW {
                    return Err(Failure::Partial(format!(
                        "the Reporting API failed {} times in a row ({e}); reporting stopped, the next run goes on from here",
                        self.failing
                    )));
                }
                let api = &self.run.config.api;
                let wait = self
                    .backoff
                    .get_or_insert_with(|| {
                        ExponentialBuilder::default()
                            .with_jitter()
                            .with_min_delay(api.retry_min_delay)
                            .with_max_delay(api.retry_max_delay)
                            .without_max_times()
                            .build()
                    })
                    .next()
                    .unwrap_or(api.retry_max_delay);
                self.not_before = self.not_before.max(Instant::now() + wait);
                tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "a Reporting API request failed; asking again");
                Ok(true)
            }
        }
    }
}
