//! Rows in flight draw on one budget of bytes: however small it is, and however many ranges of
//! several pages compete for it and for the transaction slots, a run finishes with every row.

use crate::common::*;
use linkrunner_sim::SimConfig;
use linkrunner_sync::sync;
use sqlx::PgPool;

#[sqlx::test]
async fn many_ranges_of_several_pages_finish_under_a_tiny_memory_budget(pool: PgPool) {
    let (sim, server) = start(SimConfig {
        campaigns: 40,
        users: 12_000,
        even: true,
        ..SimConfig::small(71)
    })
    .await;
    let mut config = sync_config(&server, "UTC");
    // Six pages a campaign, more campaigns at once than there are transaction slots, and a
    // budget smaller than one page: each page waits for the whole budget.
    config.page_size = 50;
    config.concurrency = 32;
    config.memory_budget = 16 << 10;
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        sync::run(&config, &pool),
    );
    let report = run.await.expect("the run finishes").unwrap();
    assert_eq!(report.totals.users.rows_inserted, 12_000);
    assert_exact(&pool, &sim).await;
}
