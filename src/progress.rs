//! Progress on stderr: one line per step, drawn above an indicatif spinner on a terminal,
//! plain lines otherwise, nothing with `--quiet`. stdout is kept for results (only the CLI
//! writes there).
//!
//! A [`Progress`] is a handle passed to whatever reports — the pipeline, the push, and the
//! transport's retries (through [`crate::transport::NetOptions::progress`]) — never a global.
//!
//! Owns: how a line reaches stderr. Must not: decide what is worth saying.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

#[derive(Clone, Default)]
pub enum Progress {
    Quiet,
    /// `harden: …` lines.
    #[default]
    Plain,
    Bar(ProgressBar),
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Progress::Quiet => "Progress::Quiet",
            Progress::Plain => "Progress::Plain",
            Progress::Bar(_) => "Progress::Bar",
        })
    }
}

impl Progress {
    /// Quiet with `quiet`, else a spinner on a terminal, else plain lines.
    pub fn new(quiet: bool) -> Progress {
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

    /// Clear the spinner once the run is over (before the result goes to stdout).
    pub fn finish(&self) {
        if let Progress::Bar(pb) = self {
            pb.finish_and_clear();
        }
    }
}

/// A byte count for people: `512 B`, `1.5 MiB`.
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = n as f64;
    let mut i = 0;
    while f >= 1024.0 && i < 4 {
        f /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{f:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human(512), "512 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(super::human(3 << 30), "3.0 GiB");
    }
}
