//! The bars a run draws on a terminal: rows received against those the counters announce, and
//! the attribution look-ups made.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where a run's bars are drawn: stderr on a terminal, nowhere otherwise (never under cron or
/// with JSON logs).
pub(crate) fn bars(enabled: bool) -> MultiProgress {
    if enabled && std::io::stderr().is_terminal() {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    }
}

/// A counter of look-ups made, with how many of them found an attribution in its message.
pub(crate) fn lookup_bar(bars: &MultiProgress) -> ProgressBar {
    let bar = bars.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {human_pos} attribution look-ups ({msg})")
            .expect("valid template"),
    );
    bar
}

/// The bar, and how many of the run's campaigns are done.
pub(crate) struct Progress {
    bar: ProgressBar,
    campaigns: usize,
    done: usize,
}

impl Progress {
    /// A bar over `expected_rows` of `campaigns`, among the run's `bars`.
    pub fn new(bars: &MultiProgress, expected_rows: u64, campaigns: usize) -> Self {
        let bar = bars.add(ProgressBar::new(expected_rows.max(1)));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {human_pos}/{human_len} rows [{bar:30}] {msg}, eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
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
