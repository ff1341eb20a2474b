//! Progress on stderr: one line per step; on a terminal, drawn above an indicatif spinner, a
//! bar per layer in flight (download, rewrite, upload: bytes done / total, rate, ETA), a
//! jobs-done bar for a batch, and one line summing up the finished transfers. Plain lines
//! otherwise, nothing with `--quiet`. stdout is kept for results (only the CLI
//! writes there).
//!
//! A [`Progress`] is a handle passed to whatever reports — the pipeline, the push, and the
//! transport's retries (through [`crate::transport::NetOptions::progress`]) — never a global.
//!
//! Owns: how a line reaches stderr. Must not: decide what is worth saying.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub enum Progress {
    Quiet,
    /// `harden: …` lines.
    #[default]
    Plain,
    /// A terminal: the lines above, a bar per transfer in flight, a summary of the finished ones.
    Bar(Bars),
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

/// The terminal's bars: a spinner with the latest line, one bar per transfer in flight (a
/// layer downloading, rewriting or uploading), and one line summing up the finished ones.
#[derive(Clone)]
pub struct Bars {
    multi: MultiProgress,
    spinner: ProgressBar,
    /// Below the spinner, from the first finished transfer on.
    summary: Arc<Mutex<Option<ProgressBar>>>,
    done: Arc<Mutex<Done>>,
}

/// Finished transfers, by verb, in the order first seen: `(verb, count, bytes)`.
#[derive(Default)]
struct Done(Vec<(&'static str, u64, u64)>);

impl Done {
    fn add(&mut self, verb: &'static str, bytes: u64) -> String {
        match self.0.iter_mut().find(|(v, _, _)| *v == verb) {
            Some(e) => {
                e.1 += 1;
                e.2 += bytes;
            }
            None => self.0.push((verb, 1, bytes)),
        }
        let parts: Vec<String> = self.0.iter().map(|(v, n, b)| format!("{v} {n} ({})", human(*b))).collect();
        format!("done: {}", parts.join(" · "))
    }
}

impl Bars {
    fn new(target: ProgressDrawTarget) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let spinner = multi.add(ProgressBar::new_spinner());
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        Bars { multi, spinner, summary: Arc::default(), done: Arc::default() }
    }
}

impl Progress {
    /// Quiet with `quiet`, else bars on a terminal, else plain lines.
    pub fn new(quiet: bool) -> Progress {
        if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bar(Bars::new(ProgressDrawTarget::stderr()))
        } else {
            Progress::Plain
        }
    }

    pub fn line(&self, msg: &str) {
        match self {
            Progress::Quiet => {}
            Progress::Plain => eprintln!("harden: {msg}"),
            Progress::Bar(b) => {
                let _ = b.multi.println(format!("  {msg}"));
                b.spinner.set_message(msg.to_string());
            }
        }
    }

    /// A bar for one transfer of `total` bytes (`verb` says which: download, rewrite, upload),
    /// on a terminal; nothing otherwise (plain output says what happened once it has).
    pub fn transfer(&self, verb: &'static str, what: &str, total: u64) -> Transfer {
        let Progress::Bar(b) = self else { return Transfer(None) };
        let pb = b.multi.add(ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template(
                "  {prefix:>8} {msg:12} [{bar:24}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(verb);
        pb.set_message(what.chars().take(12).collect::<String>());
        Transfer(Some((pb, b.clone(), Some(verb))))
    }

    /// A count of things done out of `total` (a batch's jobs), on a terminal.
    pub fn counter(&self, what: &'static str, total: u64) -> Transfer {
        let Progress::Bar(b) = self else { return Transfer(None) };
        let pb = b.multi.insert_after(&b.spinner, ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template("  {prefix:>8} [{bar:24}] {pos}/{len} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_prefix(what);
        Transfer(Some((pb, b.clone(), None)))
    }

    /// Clear the bars once the run is over (before the result goes to stdout).
    pub fn finish(&self) {
        if let Progress::Bar(b) = self {
            b.spinner.finish_and_clear();
            if let Ok(Some(s)) = b.summary.lock().as_deref() {
                // The summary stays on the terminal, as the run's last line there.
                let _ = b.multi.println(format!("  {}", s.message()));
                s.finish_and_clear();
            }
            let _ = b.multi.clear();
        }
    }
}

/// One transfer's bar (or nothing, off a terminal), with its verb (None for a counter).
/// Dropped when the transfer ends: its bar goes, and the summary line counts it.
pub struct Transfer(Option<(ProgressBar, Bars, Option<&'static str>)>);

impl Transfer {
    /// A transfer whose length was an estimate ended where it is: it counts as finished.
    pub fn complete(&self) {
        if let Some((pb, _, _)) = &self.0 {
            pb.set_length(pb.position());
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some((pb, _, _)) = &self.0 {
            pb.inc(n);
        }
    }

    /// At least `pos` bytes are done (for readers that may read a byte twice).
    pub fn reach(&self, pos: u64) {
        if let Some((pb, _, _)) = &self.0 {
            if pos > pb.position() {
                pb.set_position(pos);
            }
        }
    }

    /// Start over (a retried attempt).
    pub fn restart(&self) {
        if let Some((pb, _, _)) = &self.0 {
            pb.set_position(0);
            pb.reset_eta();
        }
    }

    pub fn position(&self) -> u64 {
        self.0.as_ref().map_or(0, |(pb, _, _)| pb.position())
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        let Some((pb, bars, verb)) = self.0.take() else { return };
        // Before finishing, which moves the position to the end.
        let pos = pb.position();
        pb.finish_and_clear();
        bars.multi.remove(&pb);
        // A counter, or a transfer cut short (a failed attempt): not in the summary.
        let Some(verb) = verb.filter(|_| pb.length().is_none_or(|len| pos >= len)) else { return };
        let (Ok(mut done), Ok(mut summary)) = (bars.done.lock(), bars.summary.lock()) else { return };
        let line = done.add(verb, pos);
        let summary = summary.get_or_insert_with(|| {
            let s = bars.multi.insert_after(&bars.spinner, ProgressBar::new_spinner());
            s.set_style(ProgressStyle::with_template("  {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            s
        });
        summary.set_message(line);
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
    use super::*;

    fn summary(p: &Progress) -> String {
        let Progress::Bar(b) = p else { unreachable!() };
        let s = b.summary.lock().unwrap();
        s.as_ref().map(|s| s.message().to_string()).unwrap_or_default()
    }

    #[test]
    fn finished_transfers_collapse_into_one_summary_line() {
        let p = Progress::Bar(Bars::new(ProgressDrawTarget::hidden()));
        assert_eq!(summary(&p), "");
        let t = p.transfer("download", "e53ec0a24cd5ffff", 3 << 20);
        t.inc(1 << 20);
        t.reach(2 << 20);
        t.reach(1);
        assert_eq!(t.position(), 2 << 20, "reach never goes back");
        t.inc(1 << 20);
        drop(t);
        let cut = p.transfer("download", "x", 100);
        cut.inc(99);
        drop(cut);
        assert_eq!(summary(&p), "done: download 1 (3.0 MiB)", "a transfer cut short is not counted");
        let u = p.transfer("upload", "y", 10);
        u.inc(10);
        drop(u);
        let d = p.transfer("download", "z", 1024);
        d.inc(1024);
        drop(d);
        assert_eq!(summary(&p), "done: download 2 (3.0 MiB) · upload 1 (10 B)");
        let jobs = p.counter("jobs", 2);
        jobs.inc(2);
        drop(jobs);
        assert_eq!(summary(&p), "done: download 2 (3.0 MiB) · upload 1 (10 B)", "counters are not transfers");
        p.finish();
    }

    #[test]
    fn no_bars_off_a_terminal() {
        for p in [Progress::Plain, Progress::Quiet] {
            let t = p.transfer("download", "x", 10);
            t.inc(10);
            assert_eq!(t.position(), 0);
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
