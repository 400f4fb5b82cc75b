//! `linkrunner-sync receive`: the webhook receiver, until SIGTERM or SIGINT.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::cli::ReceiveArgs;
use crate::db::Schema;
use crate::error::Failure;
use crate::model::personal::Protection;
use crate::receive::spool::Spool;
use crate::receive::{self, Settings};
use crate::{config, db};

/// Checks the settings and the schema, then serves until a signal asks it to stop.
pub(super) async fn run(args: ReceiveArgs) -> Result<(), Failure> {
    let schema = args.db.schema.clone();
    let key = webhook_key(&args)?;
    let keys = args
        .personal_data_keys
        .iter()
        .map(|k| k.trim().to_owned())
        .collect();
    let door =
        Protection::new(args.personal_data, keys, args.pii_key.clone()).map_err(Failure::Config)?;
    let spool = open_spool(&args)?;
    let options = config::database(args.db.database_url.as_ref()).map_err(Failure::Config)?;
    let pool = db::connect(options, 4).await?;
    check_schema(&pool, &schema, &door).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::Config(format!("--listen {}: {e}", args.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Transient(e.into()))?;
    tracing::info!(
        listen = %bound,
        path = receive::PATH,
        schema = schema.name(),
        "receiving Linkrunner webhooks"
    );
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let counts = Arc::new(receive::Counts::default());
    let settings = Settings {
        schema,
        key,
        door,
        spool,
    };
    receive::serve(listener, settings, pool, counts, stop)
        .await
        .map_err(Failure::from)?;
    tracing::info!("stopped: every delivery answered 2xx is committed or spooled");
    Ok(())
}

/// The key Linkrunner sends: `LINKRUNNER_WEBHOOK_KEY`, else the Data API's.
fn webhook_key(args: &ReceiveArgs) -> Result<SecretString, Failure> {
    let key = args
        .webhook_key
        .clone()
        .or(args.api_key.clone())
        .filter(|k| !k.expose_secret().is_empty())
        .ok_or_else(|| {
            Failure::Config(
                "LINKRUNNER_WEBHOOK_KEY is not set (nor LINKRUNNER_API_KEY, its default): the key \
                 Linkrunner sends in the linkrunner-key header"
                    .into(),
            )
        })?;
    if key.expose_secret().len() < config::MIN_API_KEY_BYTES {
        return Err(Failure::Config(format!(
            "LINKRUNNER_WEBHOOK_KEY is too short to be a Linkrunner key (at least {} bytes)",
            config::MIN_API_KEY_BYTES
        )));
    }
    Ok(key)
}

/// The schema prepared, and its recorded personal-data mode the receiver's.
async fn check_schema(pool: &PgPool, schema: &Schema, door: &Protection) -> Result<(), Failure> {
    let mut conn = db::session(pool).await?;
    db::prepare(&mut conn, schema).await?;
    let run_id = uuid::Uuid::new_v4();
    match db::personal::check(schema, &mut conn, door, run_id, false).await {
        Ok(db::personal::Plan::Ready) => {}
        Ok(db::personal::Plan::Rewrite(_)) => {
            return Err(Failure::Config(
                "a rewrite of the stored personal data is under way: let `sync \
                 --rewrite-personal-data` finish it first"
                    .into(),
            ))
        }
        Err(e) => {
            return Err(match e.downcast::<db::personal::Disagrees>() {
                Ok(why) => Failure::Config(why.0),
                Err(e) => e.context("checking the personal-data mode").into(),
            })
        }
    }
    Ok(())
}

/// The spool `--spool-dir` names, opened with what an earlier process left in it.
fn open_spool(args: &ReceiveArgs) -> Result<Option<Arc<Spool>>, Failure> {
    Ok(match &args.spool_dir {
        Some(dir) => {
            let spool = Spool::open(dir, args.spool_max_mib << 20)
                .map_err(|e| Failure::Config(format!("--spool-dir {}: {e}", dir.display())))?;
            if !spool.is_empty() {
                tracing::info!(
                    bytes = spool.bytes(),
                    segments = spool.segments(),
                    "the spool holds deliveries from before; draining them"
                );
            }
            Some(Arc::new(spool))
        }
        None => None,
    })
}

/// SIGTERM or SIGINT: stop taking connections, answer and commit what is held.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals; SIGTERM will end the receiver abruptly");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received: answering the deliveries held, then stopping");
    stop.cancel();
}
