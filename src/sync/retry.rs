//! Reading a range again when the database drops out under it: how many times, how long each
//! wait is, and a stop that ends a wait at once instead of sitting it out.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, RetryableWithContext};
use futures::future::Either;
use tokio_util::sync::CancellationToken;

use crate::db;
use crate::sync::scanner::ScanError;

/// Reads of a range when the database drops out under its transaction.
const DB_ATTEMPTS: usize = 6;

/// The waits between them: 200 ms, doubling up to 10 s.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(DB_ATTEMPTS - 1)
}

/// Runs `attempt` until it succeeds, fails otherwise than by the database dropping out, or has
/// failed so [`DB_ATTEMPTS`] times; `ctx` is handed to each attempt and back. Once `halt` is
/// cancelled the wait under way ends at once and no attempt follows it: the answer is then
/// [`ScanError::Stopped`], as for any other reading a stop cuts short.
pub(super) async fn on_db_trouble<Ctx, T, F, Fut>(
    campaign: &str,
    halt: &CancellationToken,
    ctx: Ctx,
    mut attempt: F,
) -> (Ctx, Result<T, ScanError>)
where
    F: FnMut(Ctx) -> Fut,
    Fut: Future<Output = (Ctx, Result<T, ScanError>)>,
{
    let token = halt.clone();
    let sleep = move |wait| {
        token
            .clone()
            .run_until_cancelled_owned(tokio::time::sleep(wait))
    };
    let mut attempts = 0;
    let mut failed = 0;
    (move |ctx| {
        attempts += 1;
        if attempts > 1 && halt.is_cancelled() {
            Either::Left(std::future::ready((ctx, Err(ScanError::Stopped))))
        } else {
            Either::Right(attempt(ctx))
        }
    })
    .retry(backoff())
    .sleep(sleep)
    .when(|e| matches!(e, ScanError::Db(e) if db::is_transient(e)))
    .notify(|e, wait| {
        failed += 1;
        tracing::warn!(
            campaign,
            error = %e,
            attempt = failed,
            wait_ms = wait.as_millis() as u64,
            "database trouble; reading the range again"
        );
    })
    .context(ctx)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// An attempt that counts itself and fails as a database that dropped out does.
    async fn dropped(tries: u32) -> (u32, Result<(), ScanError>) {
        (tries + 1, Err(ScanError::Db(sqlx::Error::PoolTimedOut)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_range_is_read_six_times_with_doubling_waits() {
        let started = Instant::now();
        let (tries, result) = on_db_trouble("c", &CancellationToken::new(), 0, dropped).await;
        assert_eq!(tries, 6);
        assert!(matches!(result, Err(ScanError::Db(_))), "{result:?}");
        // 200 + 400 + 800 + 1600 + 3200 ms, each rounded up to the timer's next millisecond.
        let waited = started.elapsed();
        assert!((6200..6210).contains(&waited.as_millis()), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_dropped_database_is_waited_for() {
        let halt = CancellationToken::new();
        let (tries, result) = on_db_trouble("c", &halt, 0, |n: u32| async move {
            match n {
                0 => (
                    n + 1,
                    Err::<(), _>(ScanError::Db(sqlx::Error::PoolTimedOut)),
                ),
                _ => (n + 1, Err(ScanError::Db(sqlx::Error::RowNotFound))),
            }
        })
        .await;
        assert_eq!(tries, 2);
        assert!(matches!(
            result,
            Err(ScanError::Db(sqlx::Error::RowNotFound))
        ));
        let (tries, result) = on_db_trouble("c", &halt, 0, |n: u32| async move {
            match n {
                0 | 1 => (n + 1, Err(ScanError::Db(sqlx::Error::PoolTimedOut))),
                _ => (n + 1, Ok(())),
            }
        })
        .await;
        assert_eq!(tries, 3);
        assert!(result.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_wait_at_once_and_nothing_is_read_after_it() {
        let halt = CancellationToken::new();
        let stop = halt.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            stop.cancel();
        });
        let started = Instant::now();
        let (tries, result) = on_db_trouble("c", &halt, 0, dropped).await;
        // Reads at 0, 200 and 600 ms; the stop came 400 ms into the wait of 800.
        assert_eq!(tries, 3);
        assert!(matches!(result, Err(ScanError::Stopped)), "{result:?}");
        let waited = started.elapsed();
        assert!((1000..1010).contains(&waited.as_millis()), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_range_read_after_a_stop_is_tried_once_and_not_waited_for() {
        let halt = CancellationToken::new();
        halt.cancel();
        let started = Instant::now();
        let (tries, result) = on_db_trouble("c", &halt, 0, dropped).await;
        assert_eq!(tries, 1);
        assert!(matches!(result, Err(ScanError::Stopped)), "{result:?}");
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
