//! What every part of one run shares.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::ApiClient;
use crate::config::SyncConfig;
use crate::model::personal::Suppression;

/// What every part of one run shares; cheap to clone.
#[derive(Clone)]
pub(crate) struct Run {
    pub config: Arc<SyncConfig>,
    pub pool: PgPool,
    pub api: ApiClient,
    pub run_id: Uuid,
    pub halt: CancellationToken,
    /// Where the run's progress bars are drawn.
    pub bars: indicatif::MultiProgress,
    /// The people `forget` erased, read once the run holds the lock.
    pub suppression: Arc<std::sync::OnceLock<Suppression>>,
}
