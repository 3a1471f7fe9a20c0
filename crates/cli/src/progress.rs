//! Progress on stderr while a pull runs: one bar per archive on a terminal,
//! else (CI logs, init containers) one line per archive and phase, so the
//! log still shows what moved and how far.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use dragonfly_endpoint_core::pull::progress::{Phase, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub enum Reporter {
    Off,
    Bars {
        multi: MultiProgress,
        bars: Mutex<Vec<(Arc<Progress>, ProgressBar)>>,
    },
    /// The last phase printed for each archive.
    Lines(Mutex<Vec<(Arc<Progress>, Option<Phase>)>>),
}

impl Reporter {
    pub fn new(enabled: bool) -> Arc<Self> {
        Arc::new(match (enabled, std::io::stderr().is_terminal()) {
            (false, _) => Reporter::Off,
            (true, true) => Reporter::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(Vec::new()),
            },
            (true, false) => Reporter::Lines(Mutex::new(Vec::new())),
        })
    }

    pub fn add(&self, progress: Arc<Progress>) {
        match self {
            Reporter::Off => {}
            Reporter::Bars { multi, bars } => {
                let bar = multi.add(ProgressBar::new(progress.total()));
                let style = ProgressStyle::with_template(
                    "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(progress.file_name.clone());
                if let Ok(mut bars) = bars.lock() {
                    bars.push((progress, bar));
                }
            }
            Reporter::Lines(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push((progress, None));
                }
            }
        }
    }

    pub fn tick(&self) {
        match self {
            Reporter::Off => {}
            Reporter::Bars { bars, .. } => {
                let Ok(bars) = bars.lock() else { return };
                for (progress, bar) in bars.iter() {
                    bar.set_length(progress.total().max(progress.bytes()));
                    bar.set_position(progress.bytes());
                    let name = &progress.file_name;
                    match progress.phase() {
                        Phase::Registering => bar.set_message(format!("{name} (registering)")),
                        Phase::Done => bar.finish_with_message(format!("{name} ✓")),
                        Phase::Failed => bar.abandon_with_message(format!("{name} ✗")),
                        Phase::Queued | Phase::Downloading => {}
                    }
                }
            }
            Reporter::Lines(lines) => {
                let Ok(mut lines) = lines.lock() else { return };
                for (progress, printed) in lines.iter_mut() {
                    let phase = progress.phase();
                    if *printed != Some(phase) {
                        *printed = Some(phase);
                        eprintln!("{}", line(progress, phase));
                    }
                }
            }
        }
    }
}

/// `a.mar: downloading 1048576/4194304 bytes`.
fn line(progress: &Progress, phase: Phase) -> String {
    let phase = match phase {
        Phase::Queued => "queued",
        Phase::Downloading => "downloading",
        Phase::Registering => "registering",
        Phase::Done => "done",
        Phase::Failed => "failed",
    };
    format!(
        "{}: {phase} {}/{} bytes",
        progress.file_name,
        progress.bytes(),
        progress.total()
    )
}
