//! Helpers for harden's integration tests (see integration/main.rs).
//!
//! These tests drive the real `harden` binary against real tools: Debian's
//! docker-registry, skopeo, umoci, runc, oci-image-tool and GNU tar. They
//! need root (umoci unpack/repack of real rootfs, runc) and the tools from
//! `integration/setup.sh` (`make setup`). A missing tool is a test *failure*
//! with a message naming the tool, never a silent skip.
//!
//! Fixtures are OCI layouts built by `integration/build-image.sh` (cached
//! under target/harden-fixtures); the first test that asks for one runs the
//! script once for the whole process.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Default limit for one external command (harden, skopeo, runc...).
/// Override with HARDEN_IT_TIMEOUT_SECS.
const DEFAULT_TIMEOUT_SECS: u64 = 600;

pub const AUTH_USER: &str = "harden";
pub const AUTH_PASS: &str = "secret-pw";

// ------------------------------------------------------------------ paths

/// The crate root (cwd for scripts and for harden).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn integration_dir() -> PathBuf {
    repo_root().join("integration")
}

/// A fresh temporary directory under cargo's per-target tmp dir (same disk
/// as target/, cleaned up on drop).
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).expect("create CARGO_TARGET_TMPDIR");
    tempfile::Builder::new().prefix(&format!("harden-it-{prefix}-")).tempdir_in(base).expect("create temp dir")
}

/// The profile argument for rebuild tests: `integration/profiles/minimal.toml`
/// when it exists, else the built-in profile `baseline`.
pub fn default_profile() -> String {
    let p = integration_dir().join("profiles/minimal.toml");
    if p.is_file() {
        p.to_string_lossy().into_owned()
    } else {
        "baseline".to_string()
    }
}

// ------------------------------------------------------------------ tools

/// Debian package that provides each tool we shell out to.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "docker-registry" => "docker-registry",
        "skopeo" => "skopeo",
        "umoci" => "umoci",
        "runc" => "runc",
        "debootstrap" => "debootstrap",
        "oci-image-tool" => "oci-image-tool",
        "htpasswd" => "apache2-utils",
        "zstd" => "zstd",
        "tar" => "tar",
        "curl" => "curl",
        "python3" => "python3",
        "containerd" | "ctr" | "containerd-shim-runc-v2" => "containerd",
        "dpkg" | "dpkg-query" => "dpkg",
        "bash" => "bash",
        "bsdtar" => "libarchive-tools",
        "bzip2" => "bzip2",
        "xz" => "xz-utils",
        "gzip" => "gzip",
        "timeout" => "coreutils",
        "nsenter" => "util-linux",
        "time" => "time",
        "go" => "golang-go",
        _ => "?",
    }
}

/// Absolute path of `tool`, or a panic that names the tool and how to get it.
pub fn require_tool(tool: &str) -> PathBuf {
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(p) = cache.lock().unwrap().get(tool) {
        return p.clone();
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    for extra in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    for d in dirs {
        let cand = d.join(tool);
        if is_executable(&cand) {
            cache.lock().unwrap().insert(tool.to_string(), cand.clone());
            return cand;
        }
    }
    panic!(
        "integration test needs the `{tool}` command (Debian package `{}`), which is not installed.\n\
         Run `make setup` (integration/setup.sh) as root to install the integration tools.",
        package_of(tool)
    );
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Panics unless running as root (umoci unpack of real rootfs, runc).
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)).unwrap_or("?");
    assert_eq!(
        uid, "0",
        "harden integration tests must run as root (umoci unpack/repack of real rootfs, runc); uid is {uid}"
    );
}

// ------------------------------------------------------------------ running commands

fn timeout() -> Duration {
    let secs =
        std::env::var("HARDEN_IT_TIMEOUT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_TIMEOUT_SECS);
    Duration::from_secs(secs)
}

/// Runs `cmd` with stdin closed, capturing stdout/stderr, killing it after
/// the timeout (panics then).
pub fn run_with_timeout(cmd: &mut Command) -> Output {
    run_measured(cmd, timeout()).0
}

/// What the kernel counted for a finished child: peak RSS (`wait4`'s `ru_maxrss`), CPU-seconds,
/// and the bytes it read and wrote through syscalls (`/proc/PID/io` `rchar`/`wchar`, read while
/// the child is a zombie: `waitid(WNOWAIT)` lets it be read before the child is reaped; `None`
/// where `/proc` does not say).
pub struct Usage {
    pub rss_kib: u64,
    pub cpu_secs: f64,
    pub rchar: Option<u64>,
    pub wchar: Option<u64>,
}

/// Runs `cmd` to its end with stdin closed, capturing stdout/stderr; its output and what it
/// used. Past `limit` it is killed and the test fails as hung (a watchdog: tests assert what
/// was used, not how long it took).
// The child is reaped by `wait4` (for its rusage), which clippy does not see.
#[allow(clippy::zombie_processes)]
pub fn run_measured(cmd: &mut Command, limit: Duration) -> (Output, Usage) {
    let desc = describe(cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("failed to spawn `{desc}`: {e}"));
    let pid = child.id() as libc::pid_t;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let t_out = drain(Box::new(child.stdout.take().unwrap()));
    let t_err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    loop {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        };
        assert_eq!(r, 0, "waiting for `{desc}`: {}", std::io::Error::last_os_error());
        if unsafe { info.si_pid() } == pid {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{desc}` did not finish within {limit:?}: hung (HARDEN_IT_TIMEOUT_SECS sets the usual limit)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let count = |k: &str| io.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<u64>().ok());
    let (rchar, wchar) = (count("rchar:"), count("wchar:"));
    let mut raw = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::wait4(pid, &mut raw, 0, &mut ru) }, pid, "wait4 for `{desc}`");
    let status = std::os::unix::process::ExitStatusExt::from_raw(raw);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let usage = Usage { rss_kib: ru.ru_maxrss as u64, cpu_secs: secs(ru.ru_utime) + secs(ru.ru_stime), rchar, wchar };
    (Output { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }, usage)
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command that must succeed; panics with its output otherwise.
pub fn run_ok(cmd: &mut Command) -> Output {
    let desc = describe(cmd);
    let out = run_with_timeout(cmd);
    if !out.status.success() {
        panic!(
            "`{desc}` failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn stdout_str(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_str(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Human-readable dump of an Output, for assertion messages.
pub fn dump(out: &Output) -> String {
    format!("status: {}\n--- stdout\n{}--- stderr\n{}", out.status, stdout_str(out), stderr_str(out))
}

// ------------------------------------------------------------------ harden

/// An empty docker config dir shared by all harden runs that don't pass
/// their own DOCKER_CONFIG, so the host's ~/.docker never leaks into tests.
fn empty_docker_config() -> &'static Path {
    // A fixed, shared directory (statics are never dropped, so a TempDir
    // here would leak one directory per test run).
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("harden-it-no-creds");
        std::fs::create_dir_all(&d).expect("create empty docker config dir");
        std::fs::write(d.join("config.json"), "{\"auths\":{}}").unwrap();
        d
    })
}

/// The harden binary under test: $HARDEN_BIN if set (e.g. a release build,
/// `HARDEN_BIN=target/release/harden`), else the one cargo built for this test.
pub fn harden_bin() -> PathBuf {
    match std::env::var_os("HARDEN_BIN") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            let p = if p.is_relative() { repo_root().join(p) } else { p };
            assert!(is_executable(&p), "HARDEN_BIN={} is not an executable file", p.display());
            p
        }
        _ => PathBuf::from(env!("CARGO_BIN_EXE_harden")),
    }
}

/// Runs the harden binary with `args` (cwd = crate root), hermetic
/// credentials (empty DOCKER_CONFIG) and a timeout.
pub fn harden<S: AsRef<OsStr>>(args: &[S]) -> Output {
    harden_env(args, &[] as &[(&str, &OsStr)])
}

/// Like [`harden`] with extra environment variables (e.g. DOCKER_CONFIG).
pub fn harden_env<S: AsRef<OsStr>, V: AsRef<OsStr>>(args: &[S], env: &[(&str, V)]) -> Output {
    let mut cmd = Command::new(harden_bin());
    cmd.args(args)
        .current_dir(repo_root())
        .env("DOCKER_CONFIG", empty_docker_config())
        // Nor podman's logins (XDG_RUNTIME_DIR's and XDG_CONFIG_HOME's containers/auth.json).
        .env("XDG_RUNTIME_DIR", empty_docker_config())
        .env("XDG_CONFIG_HOME", empty_docker_config())
        .env_remove("HARDEN_CREDS")
        // Rewrite cache: this test process's own, never the user's (~/.cache/harden).
        .env("XDG_CACHE_HOME", it_cache_home())
        .env_remove("REGISTRY_AUTH_FILE")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(&mut cmd)
}

/// A cache directory for every harden run of this test process.
fn it_cache_home() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // One directory, emptied when a test process starts: runs do not pile up rewritten layers.
        let d = repo_root().join("target/tmp/it-cache");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create the integration tests' cache directory");
        d
    })
    .clone()
}

/// What `harden rebuild` prints on success: `NAME@sha256:HEX`, where NAME is
/// `host:port/repo` or `oci:DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub name: String,
    pub digest: String,
}

impl Pinned {
    /// `NAME@sha256:HEX` again.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.digest)
    }
}

/// Asserts harden succeeded and printed exactly one `NAME@sha256:HEX` line.
pub fn expect_pinned(out: &Output) -> Pinned {
    assert!(out.status.success(), "harden failed:\n{}", dump(out));
    let stdout = stdout_str(out);
    assert!(
        stdout.ends_with('\n') && stdout.matches('\n').count() == 1,
        "harden stdout must be exactly one line, got {stdout:?}\n{}",
        dump(out)
    );
    let line = stdout.trim_end_matches('\n');
    let (name, digest) =
        line.rsplit_once('@').unwrap_or_else(|| panic!("harden stdout {line:?} is not NAME@sha256:HEX"));
    assert!(is_sha256_digest(digest), "bad digest {digest:?} in harden output {line:?}");
    Pinned { name: name.to_string(), digest: digest.to_string() }
}

pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .map(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .unwrap_or(false)
}

pub fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// An OCI layout at `dir` holding one image (tag `t`) of these uncompressed layers, with
/// `config` as its config's `config` object. Returns the layers' digests.
pub fn oci_layout_of_layers(dir: &Path, layers: &[&[u8]], config: Value) -> Vec<String> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        std::fs::write(blobs.join(sha256_hex(data)), data).unwrap();
        (sha256_digest(data), data.len())
    };
    let descs: Vec<(String, usize)> = layers.iter().map(|l| put(l)).collect();
    let image = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": descs.iter().map(|d| d.0.clone()).collect::<Vec<_>>()},
    });
    let (cfg, cfg_size) = put(&serde_json::to_vec(&image).unwrap());
    let layer_descs: Vec<Value> = descs
        .iter()
        .map(
            |(d, s)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s}),
        )
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
        "layers": layer_descs,
    });
    let (m, m_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": m_size,
            "annotations": {"org.opencontainers.image.ref.name": "t"}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    descs.into_iter().map(|d| d.0).collect()
}

/// Asserts a harden failure with the given exit code and a non-empty stderr.
pub fn expect_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "expected exit code {code}:\n{}", dump(out));
    assert!(!out.stderr.is_empty(), "expected an error message on stderr:\n{}", dump(out));
    assert!(out.stdout.is_empty(), "a failed run must not print a result on stdout:\n{}", dump(out));
}

// ------------------------------------------------------------------ fixtures

/// An OCI layout built by build-image.sh, addressed by tag.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub layout: PathBuf,
    pub tag: String,
}

impl Fixture {
    /// `oci:DIR:TAG`
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }

    /// Copies the layout (all tags) into `dest_parent/NAME` and returns the
    /// copy, so a test can hand it to harden without risking the cache.
    pub fn copy_into(&self, dest_parent: &Path) -> Fixture {
        let dest = dest_parent.join(self.layout.file_name().unwrap());
        run_ok(Command::new("cp").arg("-a").arg(&self.layout).arg(&dest));
        let _ = std::fs::remove_file(dest.join(".done"));
        Fixture { layout: dest, tag: self.tag.clone() }
    }

    /// The manifest digest the tag points at in index.json.
    pub fn manifest_digest(&self) -> String {
        oci_manifest_digest(&self.layout, &self.tag)
    }
}

/// Runs integration/build-image.sh once per process and returns the fixture
/// named `name` (`debian`, `app`, `app-shellcmd`).
pub fn fixture(name: &str) -> Fixture {
    // get_or_init runs the build once; concurrent callers wait for it.
    static BUILT: OnceLock<Result<Vec<String>, String>> = OnceLock::new();
    let refs = match BUILT.get_or_init(build_fixtures) {
        Ok(r) => r.clone(),
        Err(e) => panic!("{e}"),
    };
    for r in &refs {
        let rest = r.strip_prefix("oci:").unwrap_or(r);
        if let Some((dir, tag)) = rest.rsplit_once(':') {
            if tag == name {
                return Fixture { layout: PathBuf::from(dir), tag: tag.to_string() };
            }
        }
    }
    panic!("build-image.sh printed no fixture named {name:?}; it printed {refs:?}");
}

fn build_fixtures() -> Result<Vec<String>, String> {
    require_root();
    for t in ["bash", "debootstrap", "umoci", "tar", "python3"] {
        require_tool(t);
    }
    let script = integration_dir().join("build-image.sh");
    let start = Instant::now();
    let mut cmd = Command::new(require_tool("bash"));
    cmd.arg(&script).arg("all").current_dir(repo_root());
    // Fixture builds may take a few minutes on a cold cache (debootstrap).
    let out = run_with_timeout(&mut cmd);
    if !out.status.success() {
        return Err(format!(
            "integration/build-image.sh failed ({}) after {:?}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            start.elapsed(),
            stdout_str(&out),
            stderr_str(&out)
        ));
    }
    let refs: Vec<String> = stdout_str(&out).lines().filter(|l| l.starts_with("oci:")).map(str::to_string).collect();
    if refs.is_empty() {
        return Err(format!("build-image.sh printed no oci: refs\n{}", dump(&out)));
    }
    Ok(refs)
}

// ------------------------------------------------------------------ OCI layouts

pub fn read_json(path: &Path) -> Value {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&data).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Path of a blob inside an OCI layout.
pub fn oci_blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap_or_else(|| panic!("bad digest {digest:?}"));
    layout.join("blobs").join(alg).join(hex)
}

/// The manifest digest for `tag` in LAYOUT/index.json.
pub fn oci_manifest_digest(layout: &Path, tag: &str) -> String {
    let index = read_json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    for m in &manifests {
        if m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag) {
            return m["digest"].as_str().unwrap().to_string();
        }
    }
    panic!("tag {tag:?} not found in {}/index.json: {index}", layout.display());
}

/// The tag (ref.name annotation) that points at `digest` in LAYOUT/index.json, if any.
pub fn oci_tag_for_digest(layout: &Path, digest: &str) -> Option<String> {
    let index = read_json(&layout.join("index.json"));
    index["manifests"].as_array()?.iter().find_map(|m| {
        if m["digest"].as_str() == Some(digest) {
            m["annotations"]["org.opencontainers.image.ref.name"].as_str().map(str::to_string)
        } else {
            None
        }
    })
}

/// Reads a manifest (by digest) from a layout, verifying its digest.
pub fn oci_read_blob_verified(layout: &Path, digest: &str) -> Vec<u8> {
    let p = oci_blob_path(layout, digest);
    let data = std::fs::read(&p).unwrap_or_else(|e| panic!("read blob {}: {e}", p.display()));
    assert_eq!(sha256_digest(&data), digest, "blob {} does not match its digest", p.display());
    data
}

// ------------------------------------------------------------------ references

/// Converts a harden-style reference to a skopeo transport reference:
/// `host:port/repo[:tag|@digest]` -> `docker://...`; `oci:DIR:TAG` stays;
/// `oci:DIR@sha256:..` -> `oci:DIR:TAG` (tag looked up in index.json) or
/// `oci:DIR` when the layout holds a single untagged manifest.
/// Already-prefixed `docker://`, `oci:` refs pass through.
pub fn skopeo_ref(r: &str) -> String {
    if r.starts_with("docker://")
        || r.starts_with("dir:")
        || r.starts_with("docker-archive:")
        || r.starts_with("oci-archive:")
    {
        return r.to_string();
    }
    if let Some(rest) = r.strip_prefix("oci:") {
        if let Some((dir, digest)) = rest.rsplit_once('@') {
            let layout = Path::new(dir);
            if let Some(tag) = oci_tag_for_digest(layout, digest) {
                return format!("oci:{dir}:{tag}");
            }
            let index = read_json(&layout.join("index.json"));
            let n = index["manifests"].as_array().map(|a| a.len()).unwrap_or(0);
            assert_eq!(n, 1, "cannot address {r} with skopeo: digest has no tag and the layout holds {n} manifests");
            return format!("oci:{dir}");
        }
        return r.to_string();
    }
    format!("docker://{r}")
}

/// The directory part of `DIR[:TAG]` / `DIR@DIGEST` (after `oci:`).
pub fn oci_dir_of(rest: &str) -> PathBuf {
    let cut = rest.find('@').unwrap_or(rest.len());
    let rest = &rest[..cut];
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match rest[last_slash..].find(':') {
        Some(i) => PathBuf::from(&rest[..last_slash + i]),
        None => PathBuf::from(rest),
    }
}

// ------------------------------------------------------------------ skopeo

fn skopeo_cmd() -> Command {
    let mut c = Command::new(require_tool("skopeo"));
    // Never pick up the host's credentials or policy surprises.
    c.env_remove("REGISTRY_AUTH_FILE").env("DOCKER_CONFIG", empty_docker_config());
    c
}

/// `skopeo copy SRC DST` (plain HTTP allowed both ways; skopeo verifies
/// every blob digest). Refs may be harden-style or skopeo-style.
pub fn skopeo_copy(src: &str, dst: &str) {
    skopeo_copy_args(src, dst, &[]);
}

/// [`skopeo_copy`] with extra flags, e.g. `["--dest-creds", "harden:secret-pw"]`.
pub fn skopeo_copy_args(src: &str, dst: &str, extra: &[&str]) {
    let mut c = skopeo_cmd();
    c.args(["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(extra)
        .arg(skopeo_ref(src))
        .arg(skopeo_ref(dst));
    if let Some(dir) = dst.strip_prefix("oci:").map(oci_dir_of) {
        if let Some(p) = dir.parent() {
            let _ = std::fs::create_dir_all(p);
        }
    }
    run_ok(&mut c);
}

/// `skopeo copy --dest-compress-format gzip SRC DST`: recompresses zstd
/// layers to gzip. umoci 0.4.7 and oci-image-tool 1.0.0-rc1 reject
/// `application/vnd.oci.image.layer.v1.tar+zstd`, so copy a zstd result
/// through this before [`umoci_unpack`] / [`oci_image_tool_validate`].
pub fn skopeo_copy_as_gzip(src: &str, dst: &str) {
    skopeo_copy_args(src, dst, &["--dest-compress-format", "gzip"]);
}

/// `skopeo inspect --raw REF` bytes, exactly as served (hash them to check a digest).
pub fn skopeo_inspect_raw_bytes(r: &str, extra: &[&str]) -> Vec<u8> {
    let mut c = skopeo_cmd();
    c.args(["inspect", "--raw", "--tls-verify=false"]).args(extra).arg(skopeo_ref(r));
    run_ok(&mut c).stdout
}

/// `skopeo inspect --raw REF` parsed as JSON (the manifest or index).
pub fn skopeo_inspect_raw(r: &str) -> Value {
    let raw = skopeo_inspect_raw_bytes(r, &[]);
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("skopeo inspect --raw {r}: not JSON: {e}"))
}

/// `skopeo inspect --config REF` parsed as JSON (the image config).
pub fn skopeo_inspect_config(r: &str, extra: &[&str]) -> Value {
    let mut c = skopeo_cmd();
    c.args(["inspect", "--config", "--tls-verify=false"]).args(extra).arg(skopeo_ref(r));
    let out = run_ok(&mut c);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("skopeo inspect --config {r}: {e}"))
}

/// `skopeo inspect REF` (summary incl. "Digest") parsed as JSON.
pub fn skopeo_inspect(r: &str, extra: &[&str]) -> Value {
    let mut c = skopeo_cmd();
    c.args(["inspect", "--tls-verify=false"]).args(extra).arg(skopeo_ref(r));
    let out = run_ok(&mut c);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("skopeo inspect {r}: {e}"))
}

// ------------------------------------------------------------------ umoci / runc / validation

/// `umoci unpack --image DIR:TAG BUNDLE` (accepts `oci:DIR:TAG` too).
pub fn umoci_unpack(layout_ref: &str, bundle_dir: &Path) {
    require_root();
    let r = layout_ref.strip_prefix("oci:").unwrap_or(layout_ref);
    assert!(!r.contains('@'), "umoci needs a tag, not a digest: {layout_ref}");
    run_ok(Command::new(require_tool("umoci")).args(["unpack", "--image", r]).arg(bundle_dir));
}

static CONTAINER_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Runs the bundle's configured process with runc and returns its output.
/// process.terminal is forced off; the container is deleted afterwards.
pub fn runc_run(bundle_dir: &Path) -> Output {
    runc_run_args(bundle_dir, None)
}

/// Like [`runc_run`] but replaces process.args when `args` is given.
pub fn runc_run_args(bundle_dir: &Path, args: Option<&[&str]>) -> Output {
    require_root();
    let runc = require_tool("runc");
    let cfg_path = bundle_dir.join("config.json");
    let mut cfg = read_json(&cfg_path);
    cfg["process"]["terminal"] = Value::Bool(false);
    if let Some(a) = args {
        cfg["process"]["args"] = Value::Array(a.iter().map(|s| Value::String(s.to_string())).collect());
    }
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let id = format!("harden-it-{}-{}", std::process::id(), CONTAINER_SEQ.fetch_add(1, Ordering::SeqCst));
    let out = run_with_timeout(Command::new(&runc).args(["run", "--bundle"]).arg(bundle_dir).arg(&id));
    let _ = Command::new(&runc).args(["delete", "--force", &id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    out
}

/// `oci-image-tool validate --type image LAYOUT` (checks schemas and every
/// referenced blob's digest and size); panics with its output on failure.
pub fn oci_image_tool_validate(layout_dir: &Path) {
    run_ok(Command::new(require_tool("oci-image-tool")).args(["validate", "--type", "image"]).arg(layout_dir));
}

/// `tar --xattrs --xattrs-include='*' --numeric-owner -tvvf BLOB` (GNU tar
/// detects gzip/zstd). Entries with xattrs show a `*` after the mode and are
/// followed by lines like `  x: 20 security.capability`.
pub fn gnu_tar_list(blob_path: &Path) -> String {
    require_tool("zstd");
    let out = run_ok(
        Command::new(require_tool("tar"))
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-tvvf"])
            .arg(blob_path),
    );
    stdout_str(&out)
}

// ------------------------------------------------------------------ registry

/// A throwaway docker-registry on 127.0.0.1 (integration/registry.sh).
/// Dropping it stops the registry and removes its directory.
pub struct Registry {
    dir: Option<tempfile::TempDir>,
    /// `127.0.0.1:PORT`
    pub host: String,
    pub auth: bool,
}

impl Registry {
    /// The registry's access log so far (distribution logs one `response completed` line per
    /// request it answered).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.as_ref().unwrap().path().join("registry.log")).unwrap_or_default()
    }

    pub fn start(auth: bool) -> Registry {
        require_tool("docker-registry");
        require_tool("curl");
        require_tool("python3");
        if auth {
            require_tool("htpasswd");
        }
        let dir = tempdir(if auth { "registry-auth" } else { "registry" });
        let mut cmd = Command::new(require_tool("bash"));
        cmd.arg(integration_dir().join("registry.sh"))
            .arg("start")
            .arg("--owner-pid")
            .arg(std::process::id().to_string());
        if auth {
            cmd.arg("--auth");
        }
        cmd.arg(dir.path());
        let out = run_ok(&mut cmd);
        let host = stdout_str(&out).trim().to_string();
        assert!(host.starts_with("127.0.0.1:"), "registry.sh start printed {host:?}");
        Registry { dir: Some(dir), host, auth }
    }

    /// A registry with token authentication: tokens from `realm`, signed by `cert`'s key
    /// (integration/tokenserver.py).
    pub fn start_token(realm: &str, cert: &Path) -> Registry {
        require_tool("docker-registry");
        let dir = tempdir("registry-token");
        let mut cmd = Command::new(require_tool("bash"));
        cmd.arg(integration_dir().join("registry.sh"))
            .args(["start", "--owner-pid", &std::process::id().to_string(), "--token", realm])
            .arg(cert)
            .arg(dir.path());
        let host = stdout_str(&run_ok(&mut cmd)).trim().to_string();
        assert!(host.starts_with("127.0.0.1:"), "registry.sh start printed {host:?}");
        Registry { dir: Some(dir), host, auth: true }
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Stop the registry (as a crash would leave it: uploads under way are lost), keeping its
    /// storage and port for [`Registry::restart`].
    pub fn stop(&self) {
        run_ok(
            Command::new(require_tool("bash")).arg(integration_dir().join("registry.sh")).arg("stop").arg(self.dir()),
        );
    }

    /// Start the registry again on the same port with the same storage.
    pub fn restart(&self) {
        let port = self.host.rsplit_once(':').unwrap().1.to_string();
        let mut cmd = Command::new(require_tool("bash"));
        cmd.arg(integration_dir().join("registry.sh")).args([
            "start",
            "--owner-pid",
            &std::process::id().to_string(),
            "--port",
            &port,
        ]);
        if self.auth {
            cmd.arg("--auth");
        }
        let out = run_ok(cmd.arg(self.dir()));
        assert_eq!(stdout_str(&out).trim(), self.host, "restarted on another address");
    }

    /// `127.0.0.1:PORT/REPO_TAG` (harden-style reference).
    pub fn image(&self, repo_tag: &str) -> String {
        format!("{}/{}", self.host, repo_tag)
    }

    /// `docker://127.0.0.1:PORT/REPO_TAG` (skopeo reference).
    pub fn docker(&self, repo_tag: &str) -> String {
        format!("docker://{}", self.image(repo_tag))
    }

    /// Writes a docker config dir whose config.json holds this registry's
    /// credentials as `auths.HOST.auth = base64("harden:secret-pw")`.
    pub fn docker_config(&self, parent: &Path) -> PathBuf {
        let dir = parent.join("docker-config");
        std::fs::create_dir_all(&dir).unwrap();
        let auth = base64_encode(format!("{AUTH_USER}:{AUTH_PASS}").as_bytes());
        let cfg = serde_json::json!({ "auths": { self.host.clone(): { "auth": auth } } });
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        dir
    }

    /// skopeo flags carrying this registry's credentials (empty without auth).
    pub fn creds_flag(&self, which: &str) -> Vec<String> {
        if self.auth {
            vec![format!("--{which}"), format!("{AUTH_USER}:{AUTH_PASS}")]
        } else {
            vec![]
        }
    }

    /// Pushes a fixture to `repo_tag` with skopeo and returns the harden-style ref.
    pub fn push_fixture(&self, fx: &Fixture, repo_tag: &str) -> String {
        let creds = self.creds_flag("dest-creds");
        let creds: Vec<&str> = creds.iter().map(String::as_str).collect();
        skopeo_copy_args(&fx.oci_ref(), &self.docker(repo_tag), &creds);
        self.image(repo_tag)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = Command::new("bash")
                .arg(integration_dir().join("registry.sh"))
                .arg("stop")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            drop(dir);
        }
    }
}

pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        s.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    s
}

// ------------------------------------------------------------------ containerd

/// A private containerd (Debian's `containerd`): its own root, state, socket and config under a
/// temporary directory, the CRI plugin off, images unpacked with the native snapshotter (no
/// overlayfs needed). Stopped (SIGTERM, then SIGKILL) and its directory removed on drop.
pub struct Containerd {
    child: Option<std::process::Child>,
    dir: Option<tempfile::TempDir>,
    pub address: PathBuf,
}

impl Containerd {
    pub fn start() -> Containerd {
        require_root();
        let bin = require_tool("containerd");
        require_tool("ctr");
        require_tool("containerd-shim-runc-v2");
        require_tool("runc");
        // Short path: a unix socket's name is limited to 107 bytes.
        let dir = tempfile::Builder::new().prefix("harden-ctrd-").tempdir_in("/tmp").expect("containerd temp dir");
        let address = dir.path().join("c.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = {:?}\n",
                dir.path().join("root"),
                dir.path().join("state"),
                address
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start containerd: {e}"));
        let mut c = Containerd { child: Some(child), dir: Some(dir), address };
        let start = Instant::now();
        loop {
            let ok = Command::new(require_tool("ctr"))
                .arg("--address")
                .arg(&c.address)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            if let Some(st) = c.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("containerd exited ({st}) before serving:\n{}", c.log());
            }
            assert!(start.elapsed() < Duration::from_secs(30), "containerd not ready after 30 s:\n{}", c.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.as_ref().unwrap().path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address … --namespace harden-it ARGS`.
    pub fn ctr(&self) -> Command {
        let mut c = Command::new(require_tool("ctr"));
        c.arg("--address").arg(&self.address).args(["--namespace", "harden-it"]);
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(d) = self.dir.take() {
            // The native snapshotter leaves plain directories; a task's rootfs may still be mounted.
            let _ = Command::new("umount").arg("-R").arg(d.path().join("state")).stderr(Stdio::null()).status();
            let _ = d.close();
        }
    }
}

/// A batch of two jobs under a source gate given as `[defaults]` lines (`gate`, after
/// `profiles = ["passthrough"]`): `signed` passes, `unsigned` is refused with `why` on stdout,
/// and the batch exits 3 (`--keep-going`).
pub fn expect_gated_batch(reg: &Registry, dir: &Path, gate: &str, (signed, unsigned): (&str, &str), why: &str) {
    let jobs = dir.join("jobs.toml");
    let job = |src: &str, dst: String| format!("\n[[job]]\nsource = \"{src}\"\ndestination = \"{dst}\"\n");
    let text = format!(
        "[defaults]\nprofiles = [\"passthrough\"]\n{gate}\n{}{}",
        job(signed, reg.image("batch:1")),
        job(unsigned, reg.image("batch:2"))
    );
    std::fs::write(&jobs, text).unwrap();
    let out = harden(&["batch", jobs.to_str().unwrap(), "--keep-going"]);
    assert_eq!(out.status.code(), Some(3), "{}", dump(&out));
    let so = stdout_str(&out);
    assert!(so.contains(&format!("ok {signed}")), "{}", dump(&out));
    assert!(so.contains(&format!("failed {unsigned}")) && so.contains(why), "{}", dump(&out));
}
