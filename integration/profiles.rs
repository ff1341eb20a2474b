//! Acceptance test for the hardening profiles (the text): the `app` fixture — Debian
//! bookworm from debootstrap with sudo, openssh-client, iputils-ping, python3-minimal and busybox,
//! plus an app layer (Python HTTP server as entrypoint, pip cache, apt archives, a setuid copy of
//! a binary, a hardlink pair, secret files) — rebuilt with `samples/app-profile.toml` (strict + an
//! exec-form health check + labels) has no setuid/setgid file, no shell, no apt/dpkg binary, no
//! security.capability xattr, no package cache, no secret file; the perl/perl5.36.0 hardlink pair
//! is still one inode; it runs as 65532:65532 with the health check and labels set; it is smaller;
//! unpacked with umoci its entrypoint runs under runc and its health check succeeds. The same image
//! with a shell-form CMD is refused by strict, naming /bin/sh. Every "is gone" assertion is paired
//! with a "was there" assertion on the source, so none of them can pass vacuously.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// strict + exec-form python health check + release labels.
const APP_PROFILE: &str = "samples/app-profile.toml";
const NONROOT: u32 = 65532;

// ------------------------------------------------------------------ layer listings

/// One entry of a layer as `tar --xattrs --xattrs-include='*' -tvvf` lists it.
#[derive(Debug, Clone)]
struct TarEntry {
    layer: usize,
    /// `-rwsr-xr-x`: type character and permission string, without GNU tar's `*`/`+` marker.
    mode: String,
    /// Normalised: no leading `./` or `/`, no trailing `/`.
    path: String,
    /// `NAME link to TARGET`
    hardlink: Option<String>,
    xattrs: Vec<String>,
    line: String,
}

impl TarEntry {
    fn kind(&self) -> char {
        self.mode.chars().next().unwrap()
    }
    fn setuid(&self) -> bool {
        matches!(self.mode.as_bytes()[3], b's' | b'S')
    }
    fn setgid(&self) -> bool {
        matches!(self.mode.as_bytes()[6], b's' | b'S')
    }
}

fn norm(p: &str) -> String {
    let p = p.strip_prefix("./").unwrap_or(p);
    p.trim_start_matches('/').trim_end_matches('/').to_string()
}

/// Parses GNU tar's `-tvv --numeric-owner` listing: `MODE UID/GID SIZE DATE TIME NAME[ -> T| link to T]`,
/// each xattr on a following `  x: SIZE NAME` line. Anything else fails the test.
fn parse_listing(layer: usize, text: &str) -> Vec<TarEntry> {
    let mut out: Vec<TarEntry> = Vec::new();
    for line in text.lines() {
        if let Some(x) = line.strip_prefix("  x: ") {
            let name = x.split_once(' ').map(|(_, n)| n).unwrap_or(x);
            let last = out.last_mut().unwrap_or_else(|| panic!("xattr line before any entry: {line:?}"));
            last.xattrs.push(name.to_string());
            continue;
        }
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..5 {
            rest = rest.trim_start_matches(' ');
            let end = rest.find(' ').unwrap_or_else(|| panic!("unexpected tar listing line {line:?}"));
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        let name = rest.strip_prefix(' ').unwrap_or_else(|| panic!("unexpected tar listing line {line:?}"));
        let mode = fields[0].get(..10).unwrap_or_else(|| panic!("bad mode in {line:?}")).to_string();
        assert!("-dlhcbp".contains(&mode[..1]), "unknown entry type in {line:?}");
        let (name, hardlink) = match mode.as_bytes()[0] {
            b'h' => {
                let (n, t) =
                    name.split_once(" link to ").unwrap_or_else(|| panic!("hardlink without target: {line:?}"));
                (n, Some(norm(t)))
            }
            b'l' => (name.split_once(" -> ").map(|(n, _)| n).unwrap_or(name), None),
            _ => (name, None),
        };
        out.push(TarEntry { layer, mode, path: norm(name), hardlink, xattrs: Vec::new(), line: line.to_string() });
    }
    out
}

/// Every entry of every layer of `digest` in `layout`, and the sum of the layers' (compressed) sizes.
fn list_image(layout: &Path, digest: &str) -> (Vec<TarEntry>, u64) {
    let manifest: Value = serde_json::from_slice(&oci_read_blob_verified(layout, digest)).unwrap();
    let layers = manifest["layers"].as_array().unwrap_or_else(|| panic!("manifest without layers: {manifest}"));
    let mut entries = Vec::new();
    let mut size = 0;
    for (i, l) in layers.iter().enumerate() {
        size += l["size"].as_u64().unwrap();
        let listing = gnu_tar_list(&oci_blob_path(layout, l["digest"].as_str().unwrap()));
        let parsed = parse_listing(i, &listing);
        assert!(!parsed.is_empty() || layers.len() > 1, "layer {i} of {digest} lists no entries");
        entries.extend(parsed);
    }
    (entries, size)
}

const SHELLS: [&str; 10] = [
    "usr/bin/sh",
    "usr/bin/dash",
    "usr/bin/bash",
    "usr/bin/rbash",
    "usr/bin/busybox",
    "bin/sh",
    "bin/dash",
    "bin/bash",
    "bin/rbash",
    "bin/busybox",
];
const PACKAGE_MANAGERS: [&str; 6] =
    ["usr/bin/apt", "usr/bin/apt-get", "usr/bin/dpkg", "bin/apt", "bin/apt-get", "bin/dpkg"];

/// A named predicate on one layer entry.
type Check = (&'static str, fn(&TarEntry) -> bool);

/// What strict must remove or strip, as predicates on one layer entry. Each must match at least
/// one entry of the source image and none of the result.
fn forbidden() -> Vec<Check> {
    vec![
        ("a setuid bit", |e| e.setuid()),
        // Directories keep setgid (group inheritance for var/mail, var/local): that grants nothing.
        ("a setgid file", |e| e.kind() != 'd' && e.setgid()),
        ("a security.capability xattr", |e| e.xattrs.iter().any(|x| x == "security.capability")),
        ("a shell", |e| SHELLS.contains(&e.path.as_str())),
        ("apt/apt-get/dpkg", |e| PACKAGE_MANAGERS.contains(&e.path.as_str())),
        ("apt lists", |e| e.path.starts_with("var/lib/apt/lists/")),
        ("a .deb in apt's archive cache", |e| {
            e.path.starts_with("var/cache/apt/archives/") && e.path.ends_with(".deb")
        }),
        ("the pip cache", |e| e.path == "root/.cache/pip" || e.path.starts_with("root/.cache/pip/")),
        ("a secret file", |e| e.path == "app/.env" || e.path == "root/.ssh/id_rsa"),
        ("the setuid copy's bit", |e| e.path == "usr/local/bin/setuid-copy" && e.setuid()),
    ]
}

/// The image config of manifest `digest` in `layout`, every blob checked against its digest.
fn image_config(layout: &Path, digest: &str) -> Value {
    let manifest: Value = serde_json::from_slice(&oci_read_blob_verified(layout, digest)).unwrap();
    let config = oci_read_blob_verified(layout, manifest["config"]["digest"].as_str().unwrap());
    serde_json::from_slice(&config).unwrap()
}

fn find<'a>(entries: &'a [TarEntry], path: &str) -> Vec<&'a TarEntry> {
    entries.iter().filter(|e| e.path == path).collect()
}

/// `a` and `b` are one hardlink pair in the listing: one regular file, the other a link to it,
/// in the same layer.
fn assert_hardlink_pair(entries: &[TarEntry], a: &str, b: &str, what: &str) {
    let (ea, eb) = (find(entries, a), find(entries, b));
    assert!(ea.len() == 1 && eb.len() == 1, "{what}: expected one entry each for {a} and {b}: {ea:?} {eb:?}");
    let (ea, eb) = (ea[0], eb[0]);
    let ok = |file: &TarEntry, link: &TarEntry| {
        file.kind() == '-' && link.kind() == 'h' && link.hardlink.as_deref() == Some(file.path.as_str())
    };
    assert!(
        ea.layer == eb.layer && (ok(ea, eb) || ok(eb, ea)),
        "{what}: {a} / {b} are not a hardlink pair:\n{}\n{}",
        ea.line,
        eb.line
    );
}

// ------------------------------------------------------------------ registry state

/// Every file in the registry's storage (blobs, manifests, tags, upload sessions).
fn registry_files(reg: &Registry) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(&p, base, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let data = reg.dir().join("data");
    let mut out = BTreeSet::new();
    walk(&data, &data, &mut out);
    out
}

fn has_blob(files: &BTreeSet<PathBuf>, digest: &str) -> bool {
    let hex = digest.strip_prefix("sha256:").unwrap();
    files.contains(&PathBuf::from(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2])))
}

/// `skopeo inspect` of a reference that must not exist: asserts it fails because the registry
/// does not know the manifest (not for any other reason).
fn assert_not_in_registry(r: &str) {
    let out = run_with_timeout(
        Command::new(require_tool("skopeo"))
            .args(["inspect", "--raw", "--tls-verify=false", "--no-creds"])
            .arg(skopeo_ref(r))
            .env_remove("REGISTRY_AUTH_FILE"),
    );
    assert!(!out.status.success(), "{r} exists in the registry but nothing should have been pushed:\n{}", dump(&out));
    assert!(
        stderr_str(&out).contains("manifest unknown"),
        "skopeo inspect {r} failed for another reason:\n{}",
        dump(&out)
    );
}

/// The tags of `REG/REPO`.
fn registry_tags(reg: &Registry, repo: &str) -> BTreeSet<String> {
    let out = run_ok(
        Command::new(require_tool("skopeo"))
            .args(["list-tags", "--tls-verify=false", "--no-creds"])
            .arg(reg.docker(repo))
            .env_remove("REGISTRY_AUTH_FILE"),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

// ------------------------------------------------------------------ the sample profile

fn app_profile() -> toml::Table {
    let text = std::fs::read_to_string(repo_root().join(APP_PROFILE)).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{APP_PROFILE}: {e}"))
}

/// `"30s"`, `"5m"`, `"1h"` in nanoseconds (the forms the sample uses).
fn nanos(d: &str) -> u64 {
    let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("duration {d:?}"));
    n * match unit {
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => panic!("duration unit in {d:?}"),
    }
}

/// The image config's Healthcheck that the sample profile asks for.
fn expected_healthcheck() -> Value {
    let p = app_profile();
    let h = p["config"]["healthcheck"].as_table().expect("[config.healthcheck] in the sample profile");
    let test: Vec<&str> = h["test"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(test[0].starts_with('/'), "the sample's health check must be exec form: {test:?}");
    let mut hc = json!({ "Test": std::iter::once("CMD").chain(test).collect::<Vec<_>>() });
    for (k, key) in [("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")] {
        if let Some(v) = h.get(k) {
            hc[key] = json!(nanos(v.as_str().unwrap()));
        }
    }
    if let Some(r) = h.get("retries") {
        hc["Retries"] = json!(r.as_integer().unwrap());
    }
    hc
}

// ------------------------------------------------------------------ the hardened app

/// The app fixture pushed to a registry, hardened with the sample profile, and copied back out.
struct Hardened {
    /// Keeps the registry running (stopped on drop).
    _reg: Registry,
    tmp: tempfile::TempDir,
    fx: Fixture,
    /// `REG/app:1`
    src: String,
    pinned: Pinned,
    report: Value,
    /// OCI layout holding the result under tag `hard` (copied by skopeo, digests verified).
    layout: PathBuf,
}

impl Hardened {
    fn layout_ref(&self) -> String {
        format!("oci:{}:hard", self.layout.display())
    }
}

/// Steps 1 and 2 of the acceptance: rebuild through a real registry, copy the result to an OCI
/// layout with skopeo (which verifies every digest) and validate it with oci-image-tool.
fn harden_app(name: &str) -> Hardened {
    let t = Instant::now();
    let reg = Registry::start(false);
    let tmp = tempdir(name);
    let fx = fixture("app");
    let src = reg.push_fixture(&fx, "app:1");
    let report_path = tmp.path().join("report.json");

    // A cold, private rewrite cache: the layers are really rewritten by this build of harden
    // (the default cache is keyed by harden's version, which does not change between builds).
    let t_rebuild = Instant::now();
    let out = harden(&[
        "rebuild",
        &src,
        &reg.image("app:hard"),
        "--profile",
        APP_PROFILE,
        "--report",
        report_path.to_str().unwrap(),
        "--cache-dir",
        tmp.path().join("cache").to_str().unwrap(),
    ]);
    let pinned = expect_pinned(&out);
    let rebuild_time = t_rebuild.elapsed();
    assert_eq!(pinned.name, reg.image("app"), "stdout names the destination repository:\n{}", dump(&out));
    assert_ne!(pinned.digest, fx.manifest_digest(), "the result is a new image");
    let by_tag = skopeo_inspect(&reg.image("app:hard"), &[]);
    assert_eq!(by_tag["Digest"].as_str(), Some(pinned.digest.as_str()), "app:hard points at the printed digest");
    let raw = skopeo_inspect_raw_bytes(&pinned.reference(), &[]);
    assert_eq!(sha256_digest(&raw), pinned.digest, "the registry serves the manifest the digest names");

    let report = read_json(&report_path);
    assert_eq!(report["result"]["digest"].as_str(), Some(pinned.digest.as_str()), "report result: {report:#}");
    assert_eq!(report["source"]["digest"].as_str(), Some(fx.manifest_digest().as_str()));
    assert_eq!(report["guard"]["broken"], json!([]), "the guard found nothing to refuse: {report:#}");
    let actions: Vec<&str> =
        report["layers"].as_array().unwrap().iter().map(|l| l["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["rewritten", "rewritten", "added"], "both layers rewritten, one user layer added: {report:#}");

    let layout = tmp.path().join("result");
    let h = Hardened { _reg: reg, tmp, fx, src, pinned, report, layout };
    skopeo_copy(&h.pinned.reference(), &h.layout_ref());
    assert_eq!(oci_manifest_digest(&h.layout, "hard"), h.pinned.digest, "skopeo copied the manifest byte for byte");
    oci_image_tool_validate(&h.layout);
    eprintln!("[profiles] {name}: push + rebuild + copy + validate in {:?} (rebuild {rebuild_time:?})", t.elapsed());
    h
}

/// Steps 2–4: the result's layers, unpacked rootfs, runtime config and image config.
#[test]
fn profiles_strict_app_contents() {
    let h = harden_app("profiles-contents");
    let t = Instant::now();
    let (src_entries, src_size) = list_image(&h.fx.layout, &h.fx.manifest_digest());
    let (entries, size) = list_image(&h.layout, &h.pinned.digest);
    eprintln!(
        "[profiles] listed {} source and {} result entries in {:?}",
        src_entries.len(),
        entries.len(),
        t.elapsed()
    );

    for (what, pred) in forbidden() {
        let before: Vec<&TarEntry> = src_entries.iter().filter(|e| pred(e)).collect();
        assert!(!before.is_empty(), "the source should have {what} (else this check proves nothing)");
        let after: Vec<&str> = entries.iter().filter(|e| pred(e)).map(|e| e.line.as_str()).collect();
        assert!(after.is_empty(), "the result still has {what} (source had {}):\n{}", before.len(), after.join("\n"));
    }
    // No whiteouts: removed files are dropped from the layers that hold them.
    let whiteouts =
        |es: &[TarEntry]| es.iter().filter(|e| e.path.rsplit('/').next().unwrap().starts_with(".wh.")).count();
    assert_eq!(whiteouts(&src_entries), 0, "the fixture has no whiteouts");
    assert_eq!(whiteouts(&entries), 0, "harden added whiteouts");
    // Setgid directories are left alone; harden adds none.
    let sgid_dirs = |es: &[TarEntry]| -> BTreeSet<String> {
        es.iter().filter(|e| e.kind() == 'd' && e.setgid()).map(|e| e.path.clone()).collect()
    };
    assert!(sgid_dirs(&entries).is_subset(&sgid_dirs(&src_entries)), "{:?}", sgid_dirs(&entries));

    // Kept: what scanners and the app need, and the hardlink pairs.
    for (es, which) in [(&src_entries, "source"), (&entries, "result")] {
        for p in ["var/lib/dpkg/status", "usr/bin/python3.11", "app/server.py", "usr/bin/id"] {
            let f = find(es, p);
            assert!(f.len() == 1 && f[0].kind() == '-', "{which}: {p} should be one regular file: {f:?}");
        }
        assert_hardlink_pair(es, "usr/bin/perl", "usr/bin/perl5.36.0", which);
        assert_hardlink_pair(es, "app/data/a", "app/data/b", which);
    }
    // The setuid copy is still there, just without the bit.
    let copy = find(&entries, "usr/local/bin/setuid-copy");
    assert!(copy.len() == 1 && copy[0].mode == "-rwxr-xr-x", "setuid-copy should be 0755 now: {copy:?}");

    // 4. Smaller (compressed layer bytes, the user layer included).
    eprintln!("[profiles] layers: source {src_size} B, result {size} B");
    assert!(size < src_size, "the result ({size} B) is not smaller than the source ({src_size} B)");

    // 3. Unpacked: the pair is one inode; no shell resolves; the runtime user is 65532.
    let t = Instant::now();
    let bundle = h.tmp.path().join("bundle");
    umoci_unpack(&h.layout_ref(), &bundle);
    eprintln!("[profiles] umoci unpack in {:?}", t.elapsed());
    let rootfs = bundle.join("rootfs");
    for (a, b) in [("usr/bin/perl", "usr/bin/perl5.36.0"), ("app/data/a", "app/data/b")] {
        let (ma, mb) = (std::fs::metadata(rootfs.join(a)).unwrap(), std::fs::metadata(rootfs.join(b)).unwrap());
        assert_eq!((ma.dev(), ma.ino()), (mb.dev(), mb.ino()), "{a} and {b} are not the same inode after unpack");
        assert_eq!(ma.nlink(), 2, "{a}: link count");
    }
    for p in
        ["bin/sh", "usr/bin/sh", "usr/bin/dash", "usr/bin/bash", "usr/bin/busybox", "usr/bin/apt-get", "usr/bin/dpkg"]
    {
        assert!(std::fs::symlink_metadata(rootfs.join(p)).is_err(), "{p} exists in the unpacked result");
    }
    assert!(rootfs.join("var/lib/dpkg/status").is_file());
    let rt = read_json(&bundle.join("config.json"));
    assert_eq!(rt["process"]["user"]["uid"], json!(NONROOT), "runtime user: {}", rt["process"]);
    assert_eq!(rt["process"]["user"]["gid"], json!(NONROOT), "runtime group: {}", rt["process"]);
    assert_eq!(rt["process"]["args"], json!(["/usr/bin/python3", "/app/server.py"]));
    assert_eq!(rt["process"]["cwd"], "/app");

    // 3. The image config: user, health check, labels; the source had none of them. Read raw
    // (digest-verified) from the layouts: `skopeo inspect --config` re-serialises through the OCI
    // image-spec struct, which has no Healthcheck field.
    let src_cfg = image_config(&h.fx.layout, &h.fx.manifest_digest());
    let cfg = image_config(&h.layout, &h.pinned.digest);
    let seen_by_skopeo = skopeo_inspect_config(&h.pinned.reference(), &[]);
    assert_eq!(seen_by_skopeo["config"]["User"], cfg["config"]["User"]);
    assert_eq!(seen_by_skopeo["config"]["Labels"], cfg["config"]["Labels"]);
    let (sc, c) = (&src_cfg["config"], &cfg["config"]);
    assert!(sc["User"].as_str().unwrap_or("").is_empty() && sc["Healthcheck"].is_null(), "source config: {sc:#}");
    assert_eq!(c["User"], format!("{NONROOT}:{NONROOT}"), "{c:#}");
    let hc = expected_healthcheck();
    assert_eq!(c["Healthcheck"], hc, "Healthcheck as {APP_PROFILE} asks");
    assert_eq!(c["Entrypoint"], sc["Entrypoint"], "the entrypoint is unchanged");
    let labels = &c["Labels"];
    assert_eq!(labels["org.opencontainers.image.base.digest"].as_str(), Some(h.fx.manifest_digest().as_str()));
    assert_eq!(labels["org.opencontainers.image.base.name"].as_str(), Some(h.src.as_str()));
    // The profile's declared `name`, not its file name.
    assert_eq!(labels["dev.harden.profile"], "sample-app", "{labels:#}");
    assert_eq!(labels["dev.harden.profile"], h.report["profile"]["name"]);
    assert_eq!(labels["dev.harden.profile.digest"], h.report["profile"]["digest"]);
    let wanted = app_profile()["config"]["labels"].as_table().expect("[config.labels] in the sample").clone();
    assert!(wanted.contains_key("org.opencontainers.image.vendor"));
    for (k, v) in &wanted {
        assert!(sc["Labels"][k].is_null(), "source already has label {k}");
        assert_eq!(labels[k].as_str(), v.as_str(), "label {k}: {labels:#}");
    }
    let last = cfg["history"].as_array().unwrap().last().unwrap().clone();
    assert!(last["created_by"].as_str().unwrap_or("").starts_with("harden "), "history records harden: {last}");
}

// ------------------------------------------------------------------ runc

pub(crate) static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A detached runc container; killed and deleted on drop, whatever happened.
pub(crate) struct Container {
    pub(crate) runc: PathBuf,
    pub(crate) id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new(&self.runc)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["kill", &self.id, "KILL"]);
        quiet(&["delete", "--force", &self.id]);
    }
}

/// A container `runc run --detach` started from a bundle, whose process listens on a port.
pub(crate) struct Detached {
    /// Killed and deleted when this is dropped.
    pub(crate) container: Container,
    pub(crate) pid: u32,
    log_out: PathBuf,
    log_err: PathBuf,
}

impl Detached {
    /// Start `bundle` (logs and pid file in `dir`, the container id from `name`) and wait up to
    /// 30 s for its process to listen on `port` in its own network namespace; a failure to
    /// start, an exit or a timeout fails the test with the container's output.
    pub(crate) fn start_listening(runc: &Path, bundle: &Path, dir: &Path, name: &str, port: u16) -> Detached {
        let (log_out, log_err, pid_file) = (dir.join("c.out"), dir.join("c.err"), dir.join("c.pid"));
        let container = Container {
            runc: runc.to_path_buf(),
            id: format!("harden-it-{name}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst)),
        };
        let st = status_with_timeout(
            Command::new(runc)
                .args(["run", "--detach", "--pid-file"])
                .arg(&pid_file)
                .arg("--bundle")
                .arg(bundle)
                .arg(&container.id)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log_out).unwrap())
                .stderr(std::fs::File::create(&log_err).unwrap()),
            Duration::from_secs(60),
        );
        let mut d = Detached { container, pid: 0, log_out, log_err };
        assert!(st.success(), "runc run --detach failed ({st}):\n{}", d.logs());
        d.pid = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let start = Instant::now();
        while !listens(d.pid, port) {
            assert!(Path::new(&format!("/proc/{}", d.pid)).exists(), "the entrypoint exited:\n{}", d.logs());
            assert!(start.elapsed() < Duration::from_secs(30), "nothing listens on {port} after 30 s:\n{}", d.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// What the container wrote to stdout so far.
    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(&self.log_out).unwrap()
    }

    pub(crate) fn logs(&self) -> String {
        format!(
            "--- container stdout\n{}--- container stderr\n{}",
            std::fs::read_to_string(&self.log_out).unwrap_or_default(),
            std::fs::read_to_string(&self.log_err).unwrap_or_default()
        )
    }
}

/// Waits for `cmd` (stdio to the given files: a detached container keeps them open) within `limit`.
pub(crate) fn status_with_timeout(cmd: &mut Command, limit: Duration) -> ExitStatus {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True if the network namespace of `pid` has a TCP socket listening on `port` (IPv4 or IPv6).
pub(crate) fn listens(pid: u32, port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|table| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
            .map(|t| {
                t.lines().skip(1).any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
                })
            })
            .unwrap_or(false)
    })
}

pub(crate) fn runc_exec(c: &Container, argv: &[&str]) -> std::process::Output {
    run_with_timeout(Command::new(&c.runc).arg("exec").arg(&c.id).args(argv))
}

/// Step 5: the entrypoint runs under runc as 65532 and the health check passes against it.
#[test]
fn profiles_strict_app_runs_under_runc() {
    require_root();
    let h = harden_app("profiles-runc");
    let runc = require_tool("runc");
    let bundle = h.tmp.path().join("bundle");
    umoci_unpack(&h.layout_ref(), &bundle);
    let cfg_path = bundle.join("config.json");
    let mut rt = read_json(&cfg_path);
    rt["process"]["terminal"] = json!(false);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&rt).unwrap()).unwrap();

    let hc = expected_healthcheck();
    let health: Vec<&str> = hc["Test"].as_array().unwrap()[1..].iter().map(|v| v.as_str().unwrap()).collect();
    let t = Instant::now();
    {
        // The server listens on 8080 in the container's own network namespace.
        let d = Detached::start_listening(&runc, &bundle, h.tmp.path(), "prof", 8080);
        let (pid, logs) = (d.pid, || d.logs());
        eprintln!("[profiles] entrypoint listening after {:?}", t.elapsed());
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let gid_line = status.lines().find(|l| l.starts_with("Gid:")).unwrap();
        for line in [uid_line, gid_line] {
            let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
            assert_eq!(ids, vec!["65532"; 4], "the entrypoint runs as 65532: {line}");
        }

        let out = runc_exec(&d.container, &health);
        assert!(out.status.success(), "the health check fails against the running server:\n{}\n{}", dump(&out), logs());
        let out = runc_exec(&d.container, &["id", "-u"]);
        assert_eq!(stdout_str(&out), "65532\n", "{}", dump(&out));
        let out = runc_exec(&d.container, &["id", "-g"]);
        assert_eq!(stdout_str(&out), "65532\n", "{}", dump(&out));
        // No shell to exec into.
        let out = runc_exec(&d.container, &["/bin/sh", "-c", "true"]);
        assert!(!out.status.success(), "/bin/sh ran in the hardened container:\n{}", dump(&out));
        assert!(d.stdout().contains("listening on :8080"), "{}", logs());
    }
    eprintln!("[profiles] runc checks in {:?}", t.elapsed());

    // The health check really probes the server: with nothing listening it fails.
    let out = runc_run_args(&bundle, Some(&health));
    assert!(!out.status.success(), "the health check passes with no server running:\n{}", dump(&out));
}

// ------------------------------------------------------------------ refusals and dry runs

/// Step 6: a shell-form CMD is refused by strict (exit 3), naming /bin/sh, the rule and the keep
/// that fixes it; nothing reaches the registry. Following the suggestion works.
#[test]
fn profiles_strict_refuses_shell_form_cmd() {
    let reg = Registry::start(false);
    let tmp = tempdir("profiles-shellcmd");
    let src = reg.push_fixture(&fixture("app-shellcmd"), "app:shellcmd");
    let cfg = skopeo_inspect_config(&src, &[]);
    assert_eq!(cfg["config"]["Cmd"][0], "/bin/sh", "the fixture's CMD is shell form: {cfg:#}");
    let before = registry_files(&reg);
    assert!(has_blob(&before, &fixture("app-shellcmd").manifest_digest()), "registry_files sees the pushed source");

    let dst = reg.image("app:shell-strict");
    let report_path = tmp.path().join("refused.json");
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();
    let out = harden(&[
        "rebuild",
        &src,
        &dst,
        "--profile",
        "strict",
        "--report",
        report_path.to_str().unwrap(),
        "--cache-dir",
        cache,
    ]);
    expect_exit(&out, 3);
    let err = stderr_str(&out);
    let last = err.lines().last().unwrap_or("");
    for needle in ["/bin/sh", "@shells", "keep = [", "\"/usr/bin/sh\""] {
        assert!(last.contains(needle), "the refusal should mention {needle}: {last:?}\n{}", dump(&out));
    }
    // The report says the same, in the same shape as a completed run's.
    let report = read_json(&report_path);
    assert!(report.get("result").is_none(), "a refused rebuild has no result: {report:#}");
    let broken = report["guard"]["broken"].as_array().unwrap_or_else(|| panic!("no guard.broken: {report:#}"));
    assert_eq!(broken.len(), 1, "{report:#}");
    assert_eq!(broken[0]["needed_by"], "CMD");
    assert_eq!(broken[0]["path"], "/bin/sh");
    assert_eq!(broken[0]["rule"], "/bin/sh");
    assert!(broken[0]["origin"].as_str().unwrap().contains("@shells"), "{}", broken[0]);
    assert!(report["plan"]["removed"].as_array().is_some_and(|r| !r.is_empty()), "{report:#}");

    assert_not_in_registry(&dst);
    assert_eq!(registry_tags(&reg, "app"), BTreeSet::from(["shellcmd".to_string()]));
    assert_eq!(registry_files(&reg), before, "a refused rebuild wrote to the registry");

    // The suggested keep, put in a profile, is enough.
    let keep = &last[last.find("keep = [").unwrap()..];
    let keep = &keep[..=keep.find(']').unwrap()];
    let profile = tmp.path().join("strict-keep-sh.toml");
    std::fs::write(&profile, format!("extends = \"strict\"\n\n[files]\n{keep}\n")).unwrap();
    let pinned =
        expect_pinned(&harden(&["rebuild", &src, &dst, "--profile", profile.to_str().unwrap(), "--cache-dir", cache]));
    assert_eq!(skopeo_inspect(&dst, &[])["Digest"].as_str(), Some(pinned.digest.as_str()));
    assert!(registry_files(&reg).len() > before.len());
}

/// Step 7: `--dry-run` prints the plan (every removal covered), pushes nothing, exits 0 for the
/// app image and 3 (after printing the plan and the guard's finding) for the shell-form one.
#[test]
fn profiles_dry_run_pushes_nothing() {
    let reg = Registry::start(false);
    let tmp = tempdir("profiles-dry-run");
    let src = reg.push_fixture(&fixture("app"), "app:1");
    let shell_src = reg.push_fixture(&fixture("app-shellcmd"), "app:shellcmd");
    let before = registry_files(&reg);
    assert!(has_blob(&before, &fixture("app").manifest_digest()));

    let report_path = tmp.path().join("plan.json");
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();
    let dst = reg.image("app:dry");
    let out = harden(&[
        "rebuild",
        "--dry-run",
        "--report",
        report_path.to_str().unwrap(),
        &src,
        &dst,
        "--profile",
        APP_PROFILE,
        "--cache-dir",
        cache,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", dump(&out));
    let stdout = stdout_str(&out);
    assert!(!stdout.contains("@sha256:"), "a dry run prints no result reference:\n{stdout}");
    assert!(stdout.lines().next().unwrap_or("").starts_with("removed "), "the plan's summary first:\n{stdout}");
    let listed: BTreeSet<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("remove /"))
        .map(|l| l.split("  [").next().unwrap().split(" (+").next().unwrap().to_string())
        .collect();
    for p in [
        "usr/bin/dash",
        "usr/bin/bash",
        "usr/bin/busybox",
        "usr/bin/apt-get",
        "usr/bin/dpkg",
        "usr/bin/sudo",
        "usr/bin/ping",
        "app/.env",
        "root/.ssh/id_rsa",
        "root/.cache/pip",
        "var/cache/apt/archives/fake_1.0_amd64.deb",
    ] {
        // Itself, or a removed ancestor (strict removes the apt package whole, so
        // /var/cache/apt/archives goes with the fake .deb under it).
        let covered =
            std::iter::successors(Some(p), |q| q.rsplit_once('/').map(|(d, _)| d)).any(|q| listed.contains(q));
        assert!(covered, "the plan does not list removing /{p}:\n{stdout}");
    }
    assert!(!listed.contains("var/lib/dpkg/status") && !listed.contains("usr/bin/python3.11"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "chmod a-s /usr/local/bin/setuid-copy"), "{stdout}");
    assert!(!stdout.contains("guard:"), "the app image needs nothing strict removes:\n{stdout}");

    // The report has every removal, in the same shape as a completed run's (plan, guard and
    // findings at the top); stdout covers each removal (itself or a removed ancestor).
    let report = read_json(&report_path);
    assert!(report.get("result").is_none(), "a dry run has no result: {report:#}");
    assert_eq!(report["guard"]["broken"], json!([]), "{report:#}");
    assert!(report["findings"]["before"].is_array() && report["findings"]["after"].is_array(), "{report:#}");
    assert!(report["plan"]["summary"].as_str().is_some_and(|s| stdout.starts_with(s)), "{report:#}");
    let removed: Vec<String> = report["plan"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().trim_start_matches('/').to_string())
        .collect();
    assert!(removed.len() > 100, "{}", removed.len());
    for p in &removed {
        let mut q = p.as_str();
        while !listed.contains(q) {
            q = q.rsplit_once('/').map(|(parent, _)| parent).unwrap_or_else(|| panic!("/{p} is removed but not shown"));
        }
    }
    let dash = report["plan"]["removed"].as_array().unwrap().iter().find(|r| r["path"] == "/usr/bin/dash").unwrap();
    assert!(dash["origin"].as_str().unwrap().contains("@shells"), "{dash}");

    assert_not_in_registry(&dst);

    // The shell-form image: the plan and the guard's finding, exit 3, still nothing pushed.
    let shell_dst = reg.image("app:dry-shell");
    let out = harden(&["rebuild", "--dry-run", &shell_src, &shell_dst, "--profile", "strict", "--cache-dir", cache]);
    assert_eq!(out.status.code(), Some(3), "{}", dump(&out));
    let stdout = stdout_str(&out);
    assert!(stdout.lines().any(|l| l.starts_with("remove /usr/bin/dash")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("guard: CMD needs /bin/sh")), "{stdout}");
    assert_not_in_registry(&shell_dst);

    assert_eq!(registry_tags(&reg, "app"), BTreeSet::from(["1".to_string(), "shellcmd".to_string()]));
    assert_eq!(registry_files(&reg), before, "a dry run wrote to the registry");
}
