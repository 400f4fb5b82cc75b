//! Attribution look-ups in a run (`--attribution-details`): the ids due, computed in Postgres,
//! asked about with the requests the sync's own reads leave, each answer recorded as it comes,
//! so a run that dies loses at most the look-ups in flight.

use anyhow::Context;
use futures::StreamExt;
use indicatif::ProgressBar;
use sqlx::PgConnection;
use tokio::sync::watch;

use crate::api::deadline::{wall_clock_after, Deadline};
use crate::api::{ApiClient, ApiError};
use crate::config::LookupSettings;
use crate::db::lookups;
use crate::db::state;
use crate::error::Failure;
use crate::model::lookup::{Answer, LookupId, LookupKind, LookupSource};
use crate::model::personal::{Identifier, Protection};
use crate::model::run::LookupTotals;
use crate::sync::run::Run;
use crate::sync::stream::{Ended, Planning, Shared, Step, Stream, Synced};
use crate::sync::{list, progress};

/// Look-ups in flight at once: enough to use every slot the reads leave at the highest --rps
/// over an API a few hundred milliseconds away, while the pace decides the rate.
const IN_FLIGHT: usize = 16;

/// Ids asked of Postgres at a time.
const BATCH: u64 = 1000;

/// Look-ups failing in a row, each after its retries, that end the look-ups of a run: the API
/// is down, and waiting out every id's backoff would only hold the run.
const FAILURES_IN_A_ROW: u32 = 32;

/// The attribution look-ups stream (`--attribution-details`).
pub(crate) struct Lookups(pub LookupSettings);

impl Stream for Lookups {
    fn check<'a>(&'a self, _run: &'a Run, conn: &'a mut PgConnection) -> Step<'a, ()> {
        Box::pin(check_sources(conn, &self.0.sources))
    }

    fn prepare<'a>(&'a self, run: &'a Run, conn: &'a mut PgConnection) -> Step<'a, ()> {
        Box::pin(async move {
            lookups::watch(&run.config.schema, conn)
                .await
                .map_err(|e| Failure::database(e, "queueing the ids due for a look-up"))
        })
    }

    fn plan<'a>(&'a self, plan: &'a Planning<'a>) -> Step<'a, String> {
        Box::pin(plan_lookups(plan, &self.0))
    }

    fn sync<'a>(&'a self, shared: &'a Shared<'a>) -> Synced<'a> {
        let reads_done = shared.reads_done.subscribe();
        Synced::Within(Box::pin(async move {
            match run(shared.run, &self.0, reads_done).await {
                Ok(totals) => Ended::new(move |t| t.lookups = totals, Ok(())),
                Err(e) => Ended::failed(e),
            }
        }))
    }
}

/// The look-ups due now, and what they cost; the rows the run stores may make more due.
async fn plan_lookups(plan: &Planning<'_>, settings: &LookupSettings) -> Result<String, Failure> {
    let (schema, rps) = (&plan.config.schema, plan.config.api.rps);
    let mut conn = plan
        .pool
        .acquire()
        .await
        .map_err(|e| Failure::database(e, "connecting"))?;
    check_sources(&mut conn, &settings.sources).await?;
    let results = schema.table("attribution_results");
    let migrated = state::table_exists(&mut *conn, &results)
        .await
        .map_err(|e| Failure::database(e, "reading the schema"))?;
    if !migrated {
        return Ok(format!(
            "attribution look-ups: the run creates {}.attribution_results, then looks up every id it holds (at most {} this run)\n",
            schema.name(),
            settings.max
        ));
    }
    let due = lookups::due_count(schema, &mut conn, &settings.sources)
        .await
        .map_err(|e| Failure::database(e, "counting the look-ups due"))? as u64;
    let this_run = due.min(settings.max);
    Ok(format!(
        "{due} attribution look-ups due, {this_run} this run (--max-lookups {}), plus any for the rows it stores; about {:.0}s at {rps} requests/s, in the requests the reads leave\n",
        settings.max,
        this_run as f64 / rps
    ))
}

/// Refuses a `--lookup-from` column that cannot be read, before any request is made.
pub(crate) async fn check_sources(
    conn: &mut PgConnection,
    sources: &[LookupSource],
) -> Result<(), Failure> {
    for source in sources {
        let why = lookups::check_source(conn, source)
            .await
            .map_err(|e| Failure::database(e, "checking --lookup-from"))?;
        if let Some(why) = why {
            return Err(Failure::Config(why));
        }
    }
    Ok(())
}

/// Looks up the ids due, up to the run's budget, the longest due first, while the campaigns are
/// read and once more after `reads_done` turns true: rows this run stores make ids due too.
pub(crate) async fn run(
    run: &Run,
    settings: &LookupSettings,
    mut reads_done: watch::Receiver<bool>,
) -> Result<LookupTotals, Failure> {
    let mut conn = run
        .pool
        .acquire()
        .await
        .context("connecting for look-ups")?;
    let mut totals = LookupTotals::default();
    // Ids whose look-up failed in a passing way: left due for the next run.
    let mut failed: Vec<(LookupKind, String)> = Vec::new();
    let mut after_reads = false;
    let mut left = settings.max;
    let bar = progress::lookup_bar(&run.bars);
    // The clock starts when the reads end: until then look-ups only fill the slots reads leave,
    // and after it no endpoint can hold the run (and its lock) longer than --lookup-time.
    let deadline = Deadline::new(run.config.lookup_time, &run.halt);
    let api = run.api.clone().with_deadline(deadline.clone());
    let _starter = Starter(tokio::spawn({
        let (deadline, mut reads_done) = (deadline.clone(), reads_done.clone());
        async move {
            let _ = reads_done.wait_for(|done| *done).await;
            deadline.start();
        }
    }));
    let ask = Asking {
        run,
        api: &api,
        deadline: &deadline,
    };
    while left > 0 && !deadline.token().is_cancelled() {
        let due = lookups::due(
            &run.config.schema,
            &mut conn,
            &settings.sources,
            left.min(BATCH),
            &failed,
        )
        .await
        .map_err(|e| Failure::database(e, "finding the ids due for a look-up"))?;
        if due.is_empty() {
            if after_reads {
                break;
            }
            let _ = reads_done.wait_for(|done| *done).await;
            after_reads = true;
            continue;
        }
        left -= due.len() as u64;
        if let Some(why) = ask
            .look_up(&mut conn, due, &mut totals, &mut failed, &bar)
            .await?
        {
            if !run.halt.is_cancelled() {
                tracing::warn!("{why}");
                totals.stopped = Some(why);
            }
            break;
        }
    }
    // Ids still due once the clock ran out, before any was asked.
    if totals.stopped.is_none() && !run.halt.is_cancelled() && deadline.token().is_cancelled() {
        let why = ask.out_of_time();
        tracing::warn!("{why}");
        totals.stopped = Some(why);
    }
    deadline.end();
    bar.finish_and_clear();
    if totals.made > 0 {
        tracing::info!(
            lookups = totals.made,
            found = totals.found,
            not_found = totals.not_found,
            failed = totals.failed,
            "attribution look-ups done"
        );
    }
    Ok(totals)
}

/// Aborts the task that starts the deadline, however the look-ups end.
struct Starter(tokio::task::JoinHandle<()>);

impl Drop for Starter {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The look-ups' requests, under their deadline.
struct Asking<'a> {
    run: &'a Run,
    api: &'a ApiClient,
    deadline: &'a Deadline,
}

impl Asking<'_> {
    /// Looks up `due` and records each answer; why look-ups stop for this run, when they must.
    async fn look_up(
        &self,
        conn: &mut PgConnection,
        due: Vec<LookupId>,
        totals: &mut LookupTotals,
        failed: &mut Vec<(LookupKind, String)>,
        bar: &ProgressBar,
    ) -> Result<Option<String>, Failure> {
        let run = self.run;
        // A forgotten person is not looked up: the answer would be kept.
        let forgotten = if run.suppression.get().is_some_and(|s| !s.is_empty()) {
            let ids: Vec<&str> = due
                .iter()
                .filter(|id| id.kind == LookupKind::UserId)
                .map(|id| id.value.as_str())
                .collect();
            crate::db::forget::suppressed_user_ids(&run.config.schema, conn, &ids)
                .await
                .map_err(|e| Failure::database(e, "reading the suppression list"))?
        } else {
            Default::default()
        };
        let (due, forgotten): (Vec<LookupId>, Vec<LookupId>) = due.into_iter().partition(|id| {
            id.kind != LookupKind::UserId || !forgotten.holds(Identifier::UserId, &id.value)
        });
        failed.extend(forgotten.into_iter().map(|id| (id.kind, id.value)));
        let mut failing = 0;
        // Each look-up is a task of its own, so that requests go on while an answer is written.
        let mut answers = futures::stream::iter(due)
            .map(|id| {
                let api = self.api.clone();
                tokio::spawn(async move {
                    let answer = api.attribution_result(id.kind, &id.value).await;
                    (id, answer)
                })
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some(joined) = answers.next().await {
            let (id, answer) = joined.context("a look-up task failed")?;
            let answer = match settle(answer, self.deadline)? {
                Settled::Answer(answer) => answer,
                Settled::Stop => return Ok(Some(self.out_of_time())),
                Settled::Wait(wait) => {
                    // The tasks in flight would only wait the same: they end now.
                    self.deadline.end();
                    return Ok(Some(format!(
                        "the look-up endpoint asked to wait {} s (HTTP 429 Retry-After), longer than look-ups may go on (--lookup-time {:?}); no more look-ups this run; try again after {}",
                        wait.as_secs(),
                        self.deadline.span(),
                        wall_clock_after(wait).format("%Y-%m-%dT%H:%M:%SZ")
                    )));
                }
                Settled::Failed(e) => {
                    totals.made += 1;
                    totals.failed += 1;
                    tracing::warn!(kind = id.kind.as_str(), error = %e, "look-up failed; the next run asks again");
                    failed.push((id.kind, id.value));
                    failing += 1;
                    if failing == FAILURES_IN_A_ROW {
                        self.deadline.end();
                        return Ok(Some(format!(
                            "{failing} look-ups failed in a row (the last: {e}); no more look-ups this run"
                        )));
                    }
                    continue;
                }
            };
            failing = 0;
            count(totals, &id, &answer);
            let answer = at_the_door(&run.config.personal, answer);
            lookups::record(&run.config.schema, conn, run.run_id, &id, &answer)
                .await
                .map_err(|e| Failure::database(e, "recording a look-up"))?;
            bar.set_position(totals.made);
            bar.set_message(format!("{} found", totals.found));
        }
        Ok(None)
    }

    /// What the look-ups' deadline coming round says.
    fn out_of_time(&self) -> String {
        format!(
            "look-ups stopped {:?} after the signup sync's reads ended (--lookup-time); the ids left, those in flight included, are due for the next run",
            self.deadline.span()
        )
    }
}

/// The answer with its personal values rewritten as `--personal-data` says, as every page's
/// items are.
fn at_the_door(personal: &Protection, answer: Answer) -> Answer {
    match answer {
        Answer::Found { attribution, raw } => Answer::Found {
            attribution,
            raw: personal.body(raw),
        },
        Answer::Unusable { reason, raw_text } => Answer::Unusable {
            reason,
            raw_text: raw_text.map(|text| personal.body(text)),
        },
        Answer::NotFound => Answer::NotFound,
    }
}

/// What a look-up's result comes to.
enum Settled {
    /// An answer to record, usable or not.
    Answer(Answer),
    /// A passing failure: the id stays due.
    Failed(ApiError),
    /// The server asked for a wait longer than the look-ups may go on.
    Wait(std::time::Duration),
    /// Stopped by the deadline or a signal.
    Stop,
}

/// Sorts a look-up's result; a refused key ends the run, and a base URL with no look-up
/// endpoint is configuration, as for the other endpoints.
fn settle(result: Result<Answer, ApiError>, deadline: &Deadline) -> Result<Settled, Failure> {
    Ok(match result {
        Ok(answer) => Settled::Answer(answer),
        Err(ApiError::Stopped) => Settled::Stop,
        Err(e @ ApiError::Unauthorized { .. }) => return Err(list::api_failure(e)),
        Err(ApiError::NotFound) => {
            return Err(Failure::Config(
                "there is no attribution look-up at this base URL (GET /get-attribution-result \
                 answered 404); check LINKRUNNER_BASE_URL, or run without --attribution-details"
                    .into(),
            ))
        }
        Err(ApiError::RateLimited {
            retry_after: Some(wait),
        }) if deadline.outlasted_by(wait) => Settled::Wait(wait),
        Err(e) => unusable(e).map_or_else(Settled::Failed, Settled::Answer),
    })
}

/// The answer an error stands for when asking again cannot change it (a 400, a body that is
/// not an answer, one too large); the error itself when it passes.
fn unusable(e: ApiError) -> Result<Answer, ApiError> {
    match e {
        ApiError::Rejected { .. }
        | ApiError::Decode(_)
        | ApiError::Protocol(_)
        | ApiError::TooLarge { .. } => Ok(Answer::Unusable {
            reason: e.to_string(),
            raw_text: None,
        }),
        other => Err(other),
    }
}

fn count(totals: &mut LookupTotals, id: &LookupId, answer: &Answer) {
    totals.made += 1;
    match answer {
        Answer::Found { .. } => totals.found += 1,
        Answer::NotFound => totals.not_found += 1,
        Answer::Unusable { reason, .. } => {
            totals.failed += 1;
            tracing::warn!(
                kind = id.kind.as_str(),
                reason = %crate::output::secrets::clean(reason, 300),
                "a look-up's answer cannot be used: kept with the reason in attribution_results"
            );
        }
    }
}
