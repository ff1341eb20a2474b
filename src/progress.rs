//! Progress on stderr: one line per step, drawn above an indicatif spinner on a terminal,
//! plain lines otherwise, nothing with `--quiet`. stdout is kept for results.
//!
//! Code far from the pipeline (the transport's retries) reports through [`note`], which uses
//! the command's current [`Progress`] (the last one made by [`Progress::new`]).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

#[derive(Clone)]
pub enum Progress {
    Quiet,
    Plain,
    Bar(ProgressBar),
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let p = Progress::make(quiet);
        if let Ok(mut c) = CURRENT.lock() {
            *c = Some(p.clone());
        }
        p
    }

    fn make(quiet: bool) -> Progress {
        if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
            Progress::Bar(pb)
        } else {
            Progress::Plain
        }
    }

    pub fn line(&self, msg: &str) {
        match self {
            Progress::Quiet => {}
            Progress::Plain => eprintln!("harden: {msg}"),
            Progress::Bar(pb) => {
                pb.println(format!("  {msg}"));
                pb.set_message(msg.to_string());
            }
        }
    }

    /// The spinner, to clear it once the run is over.
    pub fn clone_bar(&self) -> Option<ProgressBar> {
        match self {
            Progress::Bar(pb) => Some(pb.clone()),
            _ => None,
        }
    }
}

static CURRENT: Mutex<Option<Progress>> = Mutex::new(None);

/// A line for the current command's progress (e.g. "retrying"): on stderr like the others,
/// nothing with `--quiet`, plain `harden: …` before any [`Progress`] exists.
pub fn note(msg: &str) {
    let current = CURRENT.lock().ok().and_then(|c| c.clone());
    match current {
        Some(p) => p.line(msg),
        None => eprintln!("harden: {msg}"),
    }
}
