//! `harden learn`: run an image as it asks with its root file system an overlay (the unpacked
//! image below, an empty directory above), probe it as `--verify-run` does, stop it, and read
//! what the run wrote, created or deleted (the upper directory), which TCP ports it listened on
//! and as which user its main process ran.
//!
//! Owns: the overlay mount (unmounted when dropped, and at exit) and reading the upper
//! directory. Must not: decide what the findings mean for a profile (crate::learn does).

use super::bundle::{self, Image};
use super::container::{find_runc, Container};
use super::probe;
use crate::profile::VerifyRules;
use anyhow::{anyhow, Context, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Overlay mounts made and not yet unmounted.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// What the run did to its root file system: (absolute path, what, a directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Created { path: String, dir: bool },
    Modified { path: String, dir: bool },
    Deleted { path: String },
}

#[derive(Clone, Debug)]
pub struct Observation {
    /// What passed, or why not.
    pub probe: Result<String, probe::NoPass>,
    pub probes: Vec<probe::Probe>,
    pub changes: Vec<Change>,
    /// TCP ports its network namespace listened on.
    pub listening: Vec<u16>,
    /// Ports among them that answered `GET /` with 2xx or 3xx.
    pub http: Vec<u16>,
    /// The main process's real uid and gid while it was probed.
    pub ran_as: Option<(u32, u32)>,
    pub last_lines: Vec<String>,
    /// The entrypoint (or command) and its `#!` line, when it is a script.
    pub shebang: Option<(String, String)>,
    /// The image's /etc/passwd, for naming the user it ran as.
    pub passwd: String,
}

struct Overlay {
    target: PathBuf,
}

impl Overlay {
    fn mount(lower: &Path, upper: &Path, work: &Path, target: &Path) -> Result<Overlay> {
        let opts = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
        let c = |p: &[u8]| CString::new(p).map_err(|_| anyhow!("a path with a NUL byte"));
        let (src, tgt, fstype, data) =
            (c(b"overlay")?, c(target.as_os_str().as_bytes())?, c(b"overlay")?, c(opts.as_bytes())?);
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fstype.as_ptr(), 0, data.as_ptr().cast()) };
        if rc != 0 {
            return Err(anyhow!("mounting an overlay at {}: {}", target.display(), std::io::Error::last_os_error()));
        }
        if let Ok(mut live) = LIVE.lock() {
            live.push(target.to_path_buf());
        }
        Ok(Overlay { target: target.to_path_buf() })
    }
}

fn unmount(target: &Path) {
    if let Ok(t) = CString::new(target.as_os_str().as_bytes()) {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        unmount(&self.target);
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|p| *p != self.target);
        }
    }
}

/// Unmount every overlay a run left (called by `main` after the command).
pub fn cleanup_at_exit() {
    for p in LIVE.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default() {
        unmount(&p);
    }
}

/// TCP ports in LISTEN state in the network namespace of `pid`.
fn listening(pid: u32) -> Vec<u16> {
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 3 && f[3] == "0A" {
                if let Some(p) = f[1].rsplit(':').next().and_then(|h| u16::from_str_radix(h, 16).ok()) {
                    if !ports.contains(&p) {
                        ports.push(p);
                    }
                }
            }
        }
    }
    ports.sort_unstable();
    ports
}

fn ran_as(pid: u32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| -> Option<u32> {
        status.lines().find_map(|l| l.strip_prefix(k))?.split_whitespace().next()?.parse().ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}

/// Walk `upper` against `lower`: what the run created, changed and deleted.
fn read_upper(upper: &Path, lower: &Path) -> Vec<Change> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(upper.join(&rel)) else { continue };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let r = rel.join(e.file_name());
            let abs = format!("/{}", r.display());
            let Ok(m) = e.metadata() else { continue };
            let in_lower = std::fs::symlink_metadata(lower.join(&r)).is_ok();
            if m.file_type().is_char_device() && m.rdev() == 0 {
                out.push(Change::Deleted { path: abs });
                continue;
            }
            let dir = m.is_dir();
            out.push(match in_lower {
                true => Change::Modified { path: abs, dir },
                false => Change::Created { path: abs, dir },
            });
            if dir {
                todo.push(r);
            }
        }
    }
    out
}

/// Run `image` in `dir` as it asks over an overlay root, probe it, stop it and read what it did.
pub fn observe(image: &Image, dir: &Path, rules: &VerifyRules) -> Result<Observation> {
    let runc = find_runc()?;
    let config: serde_json::Value = serde_json::from_slice(&image.config)?;
    let probing = probe::choose(rules, &config);
    std::fs::create_dir_all(dir)?;
    let bundle = bundle::make(image, dir, &bundle::How::AsItAsks)?;
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d)?;
    }
    let lower = bundle.join("rootfs");
    let mut obs = {
        let _overlay = Overlay::mount(&lower, &upper, &work, &merged)?;
        let path = bundle.join("config.json");
        let mut rt: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        rt["root"]["path"] = serde_json::json!(merged);
        std::fs::write(&path, serde_json::to_vec_pretty(&rt)?).with_context(|| format!("{}", path.display()))?;
        let id = format!("harden-learn-{}", std::process::id());
        let mut c = Container::start(&runc, &bundle, dir, &id)?;
        let outcome = probe::wait(&mut c, &probing);
        let (mut listen, mut http, mut user) = (Vec::new(), Vec::new(), None);
        if let (Some(pid), true) = (c.pid, c.running()) {
            listen = listening(pid);
            user = ran_as(pid);
            http = listen
                .iter()
                .copied()
                .filter(|p| probe::attempt(&c, &probe::Probe::Http(*p, "/".into())).is_ok())
                .collect();
        }
        c.stop();
        Observation {
            probe: outcome,
            probes: probing.probes,
            changes: Vec::new(),
            listening: listen,
            http,
            ran_as: user,
            last_lines: c.last_lines(20),
            shebang: None,
            passwd: String::new(),
        }
    };
    obs.changes = read_upper(&upper, &lower);
    obs.passwd = std::fs::read_to_string(lower.join("etc/passwd")).unwrap_or_default();
    let argv0 = config["config"]["Entrypoint"][0].as_str().or(config["config"]["Cmd"][0].as_str()).unwrap_or("");
    if argv0.starts_with('/') {
        let head = std::fs::read(lower.join(argv0.trim_start_matches('/'))).unwrap_or_default();
        let line = String::from_utf8_lossy(&head[..head.len().min(128)]).lines().next().unwrap_or("").to_string();
        if let Some(interp) = line.strip_prefix("#!") {
            obs.shebang = Some((argv0.to_string(), interp.trim().to_string()));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(obs)
}
