//! One container under runc: started in the foreground (its exit status is the process's),
//! stdout and stderr to files, killed and deleted when dropped — and, should the run be
//! abandoned while a container lives (Ctrl-C, SIGTERM), by [`cleanup_at_exit`].
//!
//! Owns: runc's command lines and the list of live containers. Must not: write bundles or
//! decide what a probe means.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Containers started and not yet deleted: (runc, id).
static LIVE: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

/// `runc` on PATH (or the usual sbin/bin directories), and whether it may run containers.
pub fn find_runc() -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from));
    let runc = dirs
        .into_iter()
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("--verify-run needs runc (Debian package `runc`), which is not installed"))?;
    if !rustix::process::geteuid().is_root() {
        bail!(
            "--verify-run runs containers with runc, which needs root here (uid {}): run as root, or rebuild \
             without --verify-run",
            rustix::process::geteuid().as_raw()
        );
    }
    Ok(runc)
}

/// A running (or exited) container.
pub struct Container {
    runc: PathBuf,
    pub id: String,
    child: Option<Child>,
    /// The container's init process on the host, from runc's pid file.
    pub pid: Option<u32>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    exit: Option<ExitStatus>,
}

impl Container {
    /// `runc run` the bundle at `bundle` as `id`, logs beside it in `dir`; waits (≤ 30 s) for its
    /// pid file.
    pub fn start(runc: &Path, bundle: &Path, dir: &Path, id: &str) -> Result<Container> {
        let (stdout, stderr, pid_file) = (dir.join("stdout"), dir.join("stderr"), dir.join("pid"));
        let out = std::fs::File::create(&stdout).with_context(|| format!("{}", stdout.display()))?;
        let err = std::fs::File::create(&stderr).with_context(|| format!("{}", stderr.display()))?;
        if let Ok(mut live) = LIVE.lock() {
            live.push((runc.to_path_buf(), id.to_string()));
        }
        let child = Command::new(runc)
            .args(["run", "--no-new-keyring", "--pid-file"])
            .arg(&pid_file)
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", runc.display()))?;
        let mut c = Container {
            runc: runc.to_path_buf(),
            id: id.to_string(),
            child: Some(child),
            pid: None,
            stdout,
            stderr,
            exit: None,
        };
        let t0 = Instant::now();
        while c.pid.is_none() && c.running() && t0.elapsed() < Duration::from_secs(30) {
            c.pid = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok());
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(c)
    }

    /// Whether runc (and so the container's init) is still running; records the exit status.
    pub fn running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => {
                self.exit = Some(st);
                false
            }
            Some(Ok(None)) => true,
            _ => false,
        }
    }

    /// The exit status, once the container has exited.
    pub fn exit(&mut self) -> Option<ExitStatus> {
        self.running();
        self.exit
    }

    /// `runc exec` `argv` in the container (as its process), killed after `limit`.
    pub fn exec(&self, argv: &[String], limit: Duration) -> Result<bool> {
        let mut child = Command::new(&self.runc)
            .arg("exec")
            .arg(&self.id)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st.success());
            }
            if t0.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines of what the container wrote (stdout, then stderr).
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let mut lines = Vec::new();
        for f in [&self.stdout, &self.stderr] {
            let text = std::fs::read(f).unwrap_or_default();
            let text = String::from_utf8_lossy(&text[text.len().saturating_sub(64 << 10)..]).into_owned();
            lines.extend(text.lines().map(str::to_string));
        }
        let skip = lines.len().saturating_sub(n);
        lines.split_off(skip)
    }

    /// Kill, wait and delete.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_delete(&self.runc, &self.id);
            let t0 = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            if let Ok(st) = child.wait() {
                self.exit.get_or_insert(st);
            }
            kill_and_delete(&self.runc, &self.id);
            if let Ok(mut live) = LIVE.lock() {
                live.retain(|(_, id)| *id != self.id);
            }
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kill_and_delete(runc: &Path, id: &str) {
    let quiet = |args: &[&str]| {
        let _ = Command::new(runc).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    };
    quiet(&["kill", id, "KILL"]);
    quiet(&["delete", "--force", id]);
}

/// Kill and delete every container a run left (called by `main` after the command).
pub fn cleanup_at_exit() {
    let left = LIVE.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
    for (runc, id) in left {
        kill_and_delete(&runc, &id);
    }
}
