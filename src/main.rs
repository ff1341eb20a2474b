//! The `harden` command: parse the arguments ([`cli`]), run, and map the outcome to an exit
//! code (see [`harden::error::exit`]). Every stage lives in the library (src/lib.rs).
//!
//! Owns: the process: the crypto provider, the exit code, the one error line (through
//! [`harden::error::one_line`]), cleanup at exit. Must not: parse flags (src/cli/ does) or run
//! a stage.

mod cli;

use harden::error::exit;
use harden::Failure;
use std::process::ExitCode;

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default): with its default action, a registry closing a
    // connection while hyper writes to it with writev (which, unlike send, cannot be told
    // MSG_NOSIGNAL) would kill harden instead of giving an error to retry. `harden … | head`
    // still ends quietly: stdout is written only through cli::out, whose broken-pipe error
    // maps to exit 141 with no message.
    let _ = rustls::crypto::ring::default_provider().install_default();
    harden::memory::fix_mmap_threshold();
    let result = cli::run();
    // After the runtime (and every thread that could write there) is gone.
    harden::verify_run::cleanup_at_exit();
    harden::verify_run::observe::cleanup_at_exit();
    harden::spool::cleanup_at_exit();
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = Failure::exit_code(&e);
            if code != exit::BROKEN_PIPE {
                eprintln!("error: {}", harden::error::one_line(&e));
            }
            ExitCode::from(code)
        }
    }
}
