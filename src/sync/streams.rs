//! The streams a run reads, in the order a dry run shows them: a new stream is one line here.

use crate::config::SyncConfig;
use crate::sync::lookup::Lookups;
use crate::sync::reporting::Reporting;
use crate::sync::stream::Stream;
use crate::sync::users::Users;

/// The streams `config` asks for.
pub(crate) fn of(config: &SyncConfig) -> Vec<Box<dyn Stream>> {
    let mut streams: Vec<Box<dyn Stream>> = vec![Box::new(Users::default())];
    if let Some(settings) = &config.reporting {
        streams.push(Box::new(Reporting(settings.clone())));
    }
    if let Some(settings) = &config.lookups {
        streams.push(Box::new(Lookups(settings.clone())));
    }
    streams
}
