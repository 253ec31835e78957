//! The progress bar shown while a phase runs, on stderr so that stdout carries only the
//! report. It polls the workers' shared counter a few times a second instead of being bumped
//! per request, so drawing never touches the measured path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use super::driver::{Budget, Counters};

/// How often the bar is redrawn.
const REFRESH: Duration = Duration::from_millis(200);

/// A running progress bar; finishing or dropping it clears it.
pub struct Progress {
    bar: ProgressBar,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows a bar labelled `label` for a phase with `budget`, fed by `counters`; when
    /// `visible` is false nothing is drawn.
    pub fn start(label: &str, budget: Budget, counters: Arc<Counters>, visible: bool) -> Progress {
        if !visible {
            return Progress {
                bar: ProgressBar::hidden(),
                ticker: None,
            };
        }
        let (length, template) = match budget {
            Budget::Requests(total) => {
                (total, "{prefix} [{bar:40}] {pos}/{len} {per_sec} {elapsed}")
            }
            Budget::Time(length) => (
                length.as_millis().try_into().unwrap_or(u64::MAX),
                "{prefix} [{bar:40}] {msg} {elapsed}/{duration}",
            ),
        };
        let bar = ProgressBar::new(length);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        let shown = bar.clone();
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tick.tick().await;
                let done = counters.done();
                match budget {
                    Budget::Requests(_) => shown.set_position(done),
                    Budget::Time(_) => {
                        let ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
                        shown.set_position(ms);
                        shown.set_message(format!("{done} requests"));
                    }
                }
            }
        });
        Progress {
            bar,
            ticker: Some(ticker),
        }
    }

    /// Stops updating and erases the bar (as dropping it does).
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        self.bar.finish_and_clear();
    }
}
