//! `linkrunner-sync migrate`: the schema only.

use crate::cli::DbArgs;
use crate::error::Failure;
use crate::{config, db};

pub(super) async fn run(args: DbArgs) -> Result<(), Failure> {
    let schema = args.schema.clone();
    let options = config::database(args.database_url.as_ref()).map_err(Failure::Config)?;
    let pool = db::connect(options, 1).await?;
    db::migrate(&mut *db::session(&pool).await?, &schema).await?;
    println!("migrations applied to schema {schema}");
    Ok(())
}
