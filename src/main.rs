//! harden: harden container images that already exist — no Dockerfile, no rebuild from source.
//!
//! The pipeline, one module per stage:
//! [`reference`] resolve → [`transport`] fetch (verified) → [`scan`] headers into a
//! [`fs::FinalFs`] → [`plan`] what the [`profile`] changes, [`guard`] checks it still starts →
//! [`rewrite`] the layers that change → [`config`] edits → [`transport`] push (blobs first,
//! manifest last) → [`signing`] the result (cosign `.sig` manifests; formats and crypto in
//! [`sign`]). [`pipeline`] orders them; this file only parses the command line.

mod audit;
mod batch;
mod cache;
mod cli;
mod config;
mod digest;
mod fs;
mod guard;
mod image;
mod layer;
mod pipeline;
mod plan;
mod profile;
mod progress;
mod reference;
mod rewrite;
mod scan;
mod sign;
mod signing;
mod spool;
mod transport;

use std::process::ExitCode;

/// Failures with their own exit code; every other error exits 1.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad flags, references or profiles: exit 2.
    #[error("{0}")]
    Usage(String),
    /// A policy result — the guard refusing, findings over the threshold, a failed verification: exit 3.
    #[error("{0}")]
    Policy(String),
}

/// A write to a closed stdout (`harden … | head`) panics with EPIPE; end the process there,
/// quietly, as a Unix tool killed by SIGPIPE would (status 141), after removing temp files.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p.downcast_ref::<String>().map(String::as_str).or_else(|| p.downcast_ref::<&str>().copied());
        // println! says "failed printing to stdout: Broken pipe"; clap_complete says "…BrokenPipe…".
        if msg.is_some_and(|m| m.contains("Broken pipe") || m.contains("BrokenPipe")) {
            spool::cleanup_at_exit();
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default): with its default action, a registry closing a
    // connection while hyper writes to it with writev (which, unlike send, cannot be told
    // MSG_NOSIGNAL) would kill harden instead of giving an error to retry. `harden … | head`
    // still ends quietly: see quiet_on_closed_stdout.
    quiet_on_closed_stdout();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = cli::run();
    // After the runtime (and every thread that could write there) is gone.
    spool::cleanup_at_exit();
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = match e.downcast_ref::<Failure>() {
                Some(Failure::Usage(_)) => 2,
                Some(Failure::Policy(_)) => 3,
                None => 1,
            };
            // One line: the outermost context first, causes after.
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", msg.join(": ").replace('\n', " "));
            ExitCode::from(code)
        }
    }
}
