//! The failures that choose an exit code, and the codes themselves. Every other error is a
//! runtime error (exit 1); the binary maps them in one place (src/main.rs).
//!
//! Owns: [`Failure`], [`exit`] and [`one_line`], the one line an error chain is shown as. Must not: print anything.

/// Failures with their own exit code; every other error exits [`exit::RUNTIME`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad flags, references or profiles: exit [`exit::USAGE`].
    #[error("{0}")]
    Usage(String),
    /// A policy result — the guard refusing, findings over the threshold, a failed
    /// verification: exit [`exit::POLICY`].
    #[error("{0}")]
    Policy(String),
    /// Stopped by a signal (SIGINT, SIGTERM, SIGHUP), cleaned up: exit 128 + its number, as a
    /// shell reports a process the signal ended.
    #[error("interrupted by {}", signal_name(*.0))]
    Signal(i32),
}

fn signal_name(n: i32) -> &'static str {
    match n {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// harden's exit codes.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// A runtime error: the network, a registry, a corrupt blob, the disk.
    pub const RUNTIME: u8 = 1;
    /// A usage error: bad flags, references or profiles.
    pub const USAGE: u8 = 2;
    /// A policy result: check findings over the threshold, a failed verification, the guard
    /// refusing.
    pub const POLICY: u8 = 3;
    /// stdout was closed under us (`harden … | head`): as a tool killed by SIGPIPE would end.
    pub const BROKEN_PIPE: u8 = 141;
}

impl Failure {
    /// The exit code an error chain asks for: the first [`Failure`] in it, else a runtime error.
    pub fn exit_code(e: &anyhow::Error) -> u8 {
        match e.downcast_ref::<Failure>() {
            Some(Failure::Usage(_)) => exit::USAGE,
            Some(Failure::Policy(_)) => exit::POLICY,
            Some(Failure::Signal(n)) => u8::try_from(128 + n).unwrap_or(exit::RUNTIME),
            None if is_broken_pipe(e) => exit::BROKEN_PIPE,
            None => exit::RUNTIME,
        }
    }
}

/// The one line users see for an error: the outermost context first, then each cause,
/// joined by `: `, newlines made spaces. `main` prints every error through it, and so does
/// whatever reports an error as a note instead of failing.
pub fn one_line(e: &anyhow::Error) -> String {
    let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
    msg.join(": ").replace('\n', " ")
}

/// Whether the error is (or was caused by) a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_chain() {
        let usage = anyhow::Error::from(Failure::Usage("bad".into()));
        assert_eq!(Failure::exit_code(&usage), exit::USAGE);
        let policy = anyhow::Error::from(Failure::Policy("no".into())).context("while checking");
        assert_eq!(Failure::exit_code(&policy), exit::POLICY);
        let pipe = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("stdout");
        assert_eq!(Failure::exit_code(&pipe), exit::BROKEN_PIPE);
        assert_eq!(Failure::exit_code(&anyhow::anyhow!("network")), exit::RUNTIME);
        let term = anyhow::Error::from(Failure::Signal(libc::SIGTERM)).context("interrupted");
        assert_eq!((Failure::exit_code(&term), format!("{:#}", term).contains("SIGTERM")), (143, true));
        assert_eq!(Failure::exit_code(&Failure::Signal(libc::SIGHUP).into()), 129);
    }

    #[test]
    fn an_error_chain_is_one_line_outermost_first() {
        let e = anyhow::anyhow!("connection reset\nby peer").context("reading sha256-ab.sig").context("checking x");
        assert_eq!(one_line(&e), "checking x: reading sha256-ab.sig: connection reset by peer");
    }
}
