//! The bar a run draws on a terminal: rows received against those the counters announce.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// The bar, and how many of the run's campaigns are done.
pub(crate) struct Progress {
    bar: ProgressBar,
    campaigns: usize,
    done: usize,
}

impl Progress {
    /// A bar over `expected_rows` of `campaigns`, on a terminal only (never under cron or with
    /// JSON logs).
    pub fn new(enabled: bool, expected_rows: u64, campaigns: usize) -> Self {
        let bar = if enabled && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(expected_rows.max(1));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {human_pos}/{human_len} rows [{bar:30}] {msg}, eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            campaigns,
            done: 0,
        }
    }

    /// The bar, which the readers advance by the rows they receive.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Counts a campaign done; `requests` is the run's so far.
    pub fn campaign_done(&mut self, requests: u64) {
        self.done += 1;
        let rate = requests as f64 / self.bar.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "campaigns {}/{}, {requests} requests ({rate:.1}/s)",
            self.done, self.campaigns
        ));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
