//! Probes of a running container, the same for the source and the result: a TCP connection or
//! an HTTP GET to the container's loopback (from a thread that joins its network namespace),
//! a command run in it, or its main process staying up.
//!
//! Owns: what each probe does and what passing means. Must not: start or stop containers.

use super::container::Container;
use crate::profile::VerifyRules;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// What is asked of a running container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A GET of (port, path) answered 2xx or 3xx.
    Http(u16, String),
    /// Each port accepts a connection.
    Tcp(Vec<u16>),
    /// The command, run in the container, exits 0 (a health check, `[verify] command`).
    Command(Vec<String>),
    /// The main process is still running (or exited 0) after the time limit.
    Running,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Http(port, path) => write!(f, "HTTP GET :{port}{path}"),
            Probe::Tcp(ports) => {
                let p: Vec<String> = ports.iter().map(|p| format!("{p}/tcp")).collect();
                write!(f, "TCP connect to {}", p.join(", "))
            }
            Probe::Command(argv) => write!(f, "command `{}`", argv.join(" ")),
            Probe::Running => write!(f, "main process still running"),
        }
    }
}

/// Why probing ended without a pass.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoPass {
    /// The run was interrupted (a signal): says nothing about the image.
    #[error("interrupted")]
    Interrupted,
    /// The image did not pass: why (the last attempt's failure, or how it exited).
    #[error("{0}")]
    Failed(String),
}

/// The probes chosen for an image and how long they may take to pass.
#[derive(Debug, PartialEq, Eq)]
pub struct Probing {
    pub probes: Vec<Probe>,
    pub limit: Duration,
}

/// The probes for an image whose config is `config`, and how long they may take: `[verify]`
/// when it names any; else the health check; else each exposed TCP port; else the main
/// process staying up.
pub fn choose(rules: &VerifyRules, config: &Value) -> Probing {
    let mut probes = Vec::new();
    if let Some((port, path)) = &rules.http {
        probes.push(Probe::Http(*port, path.clone()));
    }
    if !rules.tcp.is_empty() {
        probes.push(Probe::Tcp(rules.tcp.clone()));
    }
    if !rules.command.is_empty() {
        probes.push(Probe::Command(rules.command.clone()));
    }
    let limit = |default| Duration::from_secs(rules.seconds.unwrap_or(default));
    if !probes.is_empty() {
        return Probing { probes, limit: limit(30) };
    }
    if let Some(argv) = healthcheck(config) {
        return Probing { probes: vec![Probe::Command(argv)], limit: limit(30) };
    }
    let ports: Vec<u16> = config["config"]["ExposedPorts"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| match k.split_once('/') {
            Some((p, proto)) if proto.eq_ignore_ascii_case("tcp") => p.parse().ok(),
            None => k.parse().ok(),
            _ => None,
        })
        .collect();
    if !ports.is_empty() {
        return Probing { probes: vec![Probe::Tcp(ports)], limit: limit(30) };
    }
    Probing { probes: vec![Probe::Running], limit: limit(5) }
}

/// The health check's command line: `CMD` as it is, `CMD-SHELL` through `/bin/sh -c`.
fn healthcheck(config: &Value) -> Option<Vec<String>> {
    let test: Vec<String> = config["config"]["Healthcheck"]["Test"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    match test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        _ => None,
    }
}

/// Runs `f` on a thread that has joined the network namespace of `pid`.
fn in_netns<T: Send + 'static>(
    pid: u32,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        // SAFETY: setns on a descriptor we own, affecting only this (short-lived) thread.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("probe thread panicked"))?
}

fn connect(pid: u32, port: u16) -> std::io::Result<TcpStream> {
    in_netns(pid, move || {
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(2))
    })
}

/// One attempt: Ok(()) when the probe passes, else why not.
pub fn attempt(c: &Container, probe: &Probe) -> Result<(), String> {
    let pid = c.pid.ok_or("the container has no process")?;
    match probe {
        Probe::Tcp(ports) => {
            for p in ports {
                connect(pid, *p).map_err(|e| format!("{p}/tcp: {e}"))?;
            }
            Ok(())
        }
        Probe::Http(port, path) => {
            let mut s = connect(pid, *port).map_err(|e| format!("{port}/tcp: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
                .map_err(|e| e.to_string())?;
            let mut head = Vec::new();
            let _ = s.take(1024).read_to_end(&mut head);
            let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
            let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            if (200..400).contains(&code) {
                Ok(())
            } else if line.is_empty() {
                Err(format!("GET {path}: no answer"))
            } else {
                Err(format!("GET {path}: {line}"))
            }
        }
        Probe::Command(argv) => match c.exec(argv, Duration::from_secs(10)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("`{}` failed", argv.join(" "))),
            Err(e) => Err(format!("`{}`: {e}", argv.join(" "))),
        },
        Probe::Running => Ok(()),
    }
}

/// Probe `c` until every probe passes, it exits, `limit` passes or the run is interrupted.
/// Ok(what passed) or why not.
pub fn wait(c: &mut Container, probing: &Probing) -> Result<String, NoPass> {
    let (probes, limit) = (probing.probes.as_slice(), probing.limit);
    let t0 = Instant::now();
    let names: Vec<String> = probes.iter().map(ToString::to_string).collect();
    let names = names.join(" and ");
    if probes == [Probe::Running] {
        while t0.elapsed() < limit {
            if let Some(st) = c.exit() {
                return match st.code() {
                    Some(0) => Ok("main process exited 0".into()),
                    _ => Err(NoPass::Failed(format!("the main process exited ({st}) within {} s", limit.as_secs()))),
                };
            }
            interrupted()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        return Ok(format!("main process still running after {} s", limit.as_secs()));
    }
    let mut last = String::from("not tried");
    loop {
        if let Some(st) = c.exit() {
            return Err(NoPass::Failed(format!(
                "the main process exited ({st}) before {names} passed (last try: {last})"
            )));
        }
        interrupted()?;
        match probes.iter().try_for_each(|p| attempt(c, p)) {
            Ok(()) => return Ok(names),
            Err(e) => last = e,
        }
        if t0.elapsed() >= limit {
            return Err(NoPass::Failed(format!("{names} did not pass within {} s: {last}", limit.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn interrupted() -> Result<(), NoPass> {
    match crate::spool::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        true => Err(NoPass::Interrupted),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_are_chosen_verify_then_healthcheck_then_ports_then_running() {
        let cfg = json!({"config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                                    "Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"]}}});
        let rules = VerifyRules { http: Some((80, "/".into())), seconds: Some(7), ..Default::default() };
        assert_eq!(
            choose(&rules, &cfg),
            Probing { probes: vec![Probe::Http(80, "/".into())], limit: Duration::from_secs(7) }
        );
        let Probing { probes: p, .. } = choose(&VerifyRules::default(), &cfg);
        assert_eq!(p, [Probe::Command(vec!["/bin/sh".into(), "-c".into(), "curl -f localhost".into()])]);
        let cfg = json!({"config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Healthcheck": {"Test": ["NONE"]}}});
        assert_eq!(
            choose(&VerifyRules::default(), &cfg),
            Probing { probes: vec![Probe::Tcp(vec![80])], limit: Duration::from_secs(30) }
        );
        let cfg = json!({"config": {}});
        assert_eq!(
            choose(&VerifyRules::default(), &cfg),
            Probing { probes: vec![Probe::Running], limit: Duration::from_secs(5) }
        );
        assert_eq!(Probe::Tcp(vec![80, 443]).to_string(), "TCP connect to 80/tcp, 443/tcp");
    }
}
