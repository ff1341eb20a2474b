//! The profile × fixture matrix (issue 20, part 5): every built-in profile rebuilds every fixture
//! image built from real Debian content — minbase, the app, the app with a shell-form CMD, and the
//! three realistic variants of `build-image.sh` ("matrix fixtures": debootstrap's `.deb` cache
//! left in place with a file byte-identical to `/usr/bin/python3.11`; a pip cache and
//! documentation examples byte-identical to, or hardlinked with, what the app runs; tools hidden
//! under other names) — and each result must be pushed (an OCI layout), the guard must pass, and
//! the result must run under runc: the app answers HTTP on 8080 (a real client, `curl` in the
//! container's network namespace), minbase prints its greeting. A refusal fails the test unless
//! the table below expects it, with the reason. What each result holds is read from umoci's
//! unpacking of it, not by harden: the copies of a cache file or a document stay, the hidden tools
//! are gone under strict and stay under the profiles that keep their originals.
//!
//! The fixtures shaped like official images (`nginx`: a `#!/bin/sh` entrypoint, root, port 80;
//! `gosu-service`: a root entrypoint that takes its VOLUME and drops to uid 999 with gosu) are
//! rebuilt with `--verify-run` (issue 26, part 4): each result pushed has passed its probe, run
//! under runc with its contract; each refusal is in the table with its reason. Then `harden
//! learn`'s snippet for the fixture, added after `baseline` and after `debian`, must give results
//! that pass `--verify-run`. No container, mount or temporary file of harden's is left after a
//! cell (TMPDIR is the test's own and must be empty).
//!
//! The `alpine` profile is not in the matrix: there is no apk fixture (every fixture is Debian).

use crate::common::*;
use crate::profiles::Detached;
use crate::verify_run::{assert_nothing_left, harden_in};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const PROFILES: [&str; 4] = ["baseline", "debian", "strict", "passthrough"];
const ALL: &[&str] = &PROFILES;
/// The profiles that remove caches (all but passthrough).
const CLEANING: &[&str] = &["baseline", "debian", "strict"];
const NONROOT: u32 = 65532;

/// How a fixture's result shows that it runs.
#[derive(Clone, Copy, Debug)]
enum Run {
    /// The entrypoint listens on 8080 and `GET /healthz` answers `ok`.
    Serves,
    /// The CMD prints exactly this and exits 0.
    Prints(&'static str),
    /// `--verify-run`'s probe is the proof (the fixture's own: HTTP or TCP on its exposed port):
    /// the report's `verify_run.result.passed`, from runc runs of the source and the result.
    Verified,
}

/// A refusal the matrix expects: the profile, what the guard's line must say, and why refusing
/// is right.
struct Refusal {
    profile: &'static str,
    says: &'static str,
    why: &'static str,
}

/// One fixture's row: how it runs, the refusals it exists to get, and what its results hold
/// (`(profiles, path, present)`, read from the unpacked result).
struct Row {
    fixture: &'static str,
    run: Run,
    refused: &'static [Refusal],
    files: &'static [(&'static [&'static str], &'static str, bool)],
    /// Under strict: each hidden copy and the removed file the report says it followed.
    strict_copies: &'static [(&'static str, &'static str)],
    /// debootstrap's downloaded `.deb` files are in /var/cache/apt/archives: all of them go
    /// where caches go, and stay under passthrough.
    deb_cache: bool,
    /// Rebuilt with `--verify-run`: a result pushed has passed its probe under its contract.
    verify: bool,
    /// Run `harden learn` on the fixture and rebuild with its snippet after baseline and after
    /// debian (with `--verify-run`): the refusals expected then (none: both must serve).
    learned: Option<&'static [Refusal]>,
}

/// A shell-form CMD under strict: the README's documented refusal (strict removes `@shells`).
const SHELL_CMD_UNDER_STRICT: Refusal = Refusal {
    profile: "strict",
    says: "CMD needs /bin/sh",
    why: "its CMD is shell form (/bin/sh -c …) and strict removes every shell; the guard must refuse",
};

/// nginx under the default profile: 65532 on a read-only root cannot make nginx's directories.
const NGINX_READ_ONLY: Refusal = Refusal {
    profile: "baseline",
    says: "cannot create directory '/var/cache/nginx': Read-only file system",
    why: "the result runs as 65532 on a read-only root and its entrypoint's `mkdir /var/cache/nginx` fails; \
          nothing declares nginx's writable directories until `harden learn`'s snippet does",
};
const NGINX_READ_ONLY_DEBIAN: Refusal = Refusal { profile: "debian", ..NGINX_READ_ONLY };
/// passthrough keeps the image's user (root) but its contract is the default runtime's:
/// read-only root, every capability dropped.
const NGINX_READ_ONLY_PASSTHROUGH: Refusal = Refusal {
    profile: "passthrough",
    why: "passthrough keeps root, but the contract it runs under has a read-only root (no \
          [runtime] writable), so the entrypoint's `mkdir /var/cache/nginx` fails as root too",
    ..NGINX_READ_ONLY
};
/// gosu-service under passthrough: root without CAP_CHOWN cannot take its data directory.
const GOSU_NO_CHOWN_PASSTHROUGH: Refusal = Refusal {
    profile: "passthrough",
    says: "chown: changing ownership of '/var/lib/db': Operation not permitted",
    why: "passthrough keeps root, so the entrypoint takes the VOLUME with `chown` before gosu; the \
          contract drops every capability (CAP_CHOWN too). Under baseline/debian the entrypoint runs \
          as 65532, skips the chown, and the VOLUME (a fresh directory owned by 65532) is writable",
};

/// A `#!/bin/sh` entrypoint under strict: the guard refuses before anything runs.
const ENTRYPOINT_SCRIPT_UNDER_STRICT: Refusal = Refusal {
    profile: "strict",
    says: "needs /bin/sh",
    why: "its ENTRYPOINT is a #!/bin/sh script and strict removes every shell",
};

const HIDDEN: [(&str, &str); 6] = [
    ("usr/local/bin/healthcheck-runner", "/usr/bin/dash"),
    ("opt/tools/pkgtool", "/usr/bin/dpkg"),
    ("opt/tools/fetch-deps", "/usr/bin/apt-get"),
    ("usr/local/bin/remote", "/usr/bin/ssh"),
    ("usr/local/bin/toolbox", "/usr/bin/busybox"),
    ("usr/local/sbin/rescue", "/usr/bin/bash"),
];
const KEEP_SHELLS: &[&str] = &["baseline", "debian", "passthrough"];

fn row(fixture: &str) -> Row {
    match fixture {
        "debian" => Row {
            fixture: "debian",
            run: Run::Prints("hello from debian\n"),
            refused: &[SHELL_CMD_UNDER_STRICT],
            files: &[(ALL, "usr/bin/ls", true)],
            strict_copies: &[],
            deb_cache: false,
            verify: false,
            learned: None,
        },
        "app" => Row {
            fixture: "app",
            run: Run::Serves,
            refused: &[],
            files: &[
                (ALL, "usr/bin/python3.11", true),
                (CLEANING, "root/.ssh/id_rsa", false),
                (CLEANING, "var/cache/apt/archives/fake_1.0_amd64.deb", false),
                (&["passthrough"], "root/.ssh/id_rsa", true),
            ],
            strict_copies: &[],
            deb_cache: false,
            verify: true,
            learned: None,
        },
        "app-shellcmd" => Row {
            fixture: "app-shellcmd",
            run: Run::Serves,
            refused: &[SHELL_CMD_UNDER_STRICT],
            files: &[(ALL, "usr/bin/python3.11", true)],
            strict_copies: &[],
            deb_cache: false,
            verify: false,
            learned: None,
        },
        "app-debs" => Row {
            fixture: "app-debs",
            run: Run::Serves,
            refused: &[],
            files: &[
                (ALL, "usr/bin/python3.11", true),
                (CLEANING, "var/cache/apt/archives/python3.11-minimal_fake_amd64.deb", false),
                (&["passthrough"], "var/cache/apt/archives/python3.11-minimal_fake_amd64.deb", true),
            ],
            strict_copies: &[],
            deb_cache: true,
            verify: false,
            learned: None,
        },
        "app-pipdocs" => Row {
            fixture: "app-pipdocs",
            run: Run::Serves,
            refused: &[],
            files: &[
                (ALL, "usr/local/bin/app-serve", true),
                (ALL, "app/server.py", true),
                (ALL, "usr/bin/python3.11", true),
                (CLEANING, "root/.cache/pip/wheels/3c/9e/app-serve", false),
                (&["debian", "strict"], "usr/share/doc/app-serve/examples/app-serve", false),
                (&["debian", "strict"], "usr/share/doc/app-serve/examples/server.py", false),
                (&["debian", "strict"], "usr/share/doc/app-serve/examples/python3.11", false),
                (&["baseline", "passthrough"], "usr/share/doc/app-serve/examples/server.py", true),
            ],
            strict_copies: &[],
            deb_cache: false,
            verify: false,
            learned: None,
        },
        "app-hidden" => Row {
            fixture: "app-hidden",
            run: Run::Serves,
            refused: &[],
            files: &[
                (ALL, "usr/bin/python3.11", true),
                (&["strict"], HIDDEN[0].0, false),
                (&["strict"], HIDDEN[1].0, false),
                (&["strict"], HIDDEN[2].0, false),
                (&["strict"], HIDDEN[3].0, false),
                (&["strict"], HIDDEN[4].0, false),
                (&["strict"], HIDDEN[5].0, false),
                (KEEP_SHELLS, HIDDEN[0].0, true),
                (KEEP_SHELLS, HIDDEN[4].0, true),
                (KEEP_SHELLS, HIDDEN[5].0, true),
            ],
            strict_copies: &HIDDEN,
            deb_cache: false,
            verify: false,
            learned: None,
        },
        "nginx" => Row {
            fixture: "nginx",
            run: Run::Verified,
            refused: &[
                NGINX_READ_ONLY,
                NGINX_READ_ONLY_DEBIAN,
                ENTRYPOINT_SCRIPT_UNDER_STRICT,
                NGINX_READ_ONLY_PASSTHROUGH,
            ],
            files: &[],
            strict_copies: &[],
            deb_cache: false,
            verify: true,
            learned: Some(&[]),
        },
        "gosu-service" => Row {
            fixture: "gosu-service",
            run: Run::Verified,
            refused: &[ENTRYPOINT_SCRIPT_UNDER_STRICT, GOSU_NO_CHOWN_PASSTHROUGH],
            files: &[],
            strict_copies: &[],
            deb_cache: false,
            verify: true,
            learned: Some(&[]),
        },
        other => panic!("no matrix row for fixture {other:?}"),
    }
}

/// Rebuild `fixture` with each built-in profile into one OCI layout and hold each result to its
/// row: success with the guard passing and the result running, or the expected refusal. A row
/// with `learned` then runs `harden learn` and rebuilds with its snippet after baseline and debian.
fn matrix(fixture: &str) {
    require_root();
    let t0 = Instant::now();
    let row = row(fixture);
    let fx = fixture_named(row.fixture);
    let tmp = tempdir(&format!("matrix-{fixture}"));
    // harden's TMPDIR: what the verify runs leave there is seen (and must be nothing).
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let runc = require_tool("runc");
    let m = Matrix { row: &row, src: fx.oci_ref(), tmp: tmp.path(), tmpdir: &tmpdir, runc: &runc };
    for profile in PROFILES {
        let refusal = row.refused.iter().find(|r| r.profile == profile);
        m.cell(profile, profile, &[], refusal);
    }
    if let Some(refused) = row.learned {
        let t = Instant::now();
        let out = harden_in(&tmpdir, &["learn", &m.src]);
        assert!(out.status.success(), "{fixture}: harden learn fails:\n{}", dump(&out));
        assert_nothing_left(&tmpdir);
        let learned = tmp.path().join("learned.toml");
        std::fs::write(&learned, stdout_str(&out)).unwrap();
        eprintln!("[matrix] {fixture}: learn in {:?}:\n{}", t.elapsed(), stdout_str(&out));
        for profile in ["baseline", "debian"] {
            let refusal = refused.iter().find(|r| r.profile == profile);
            m.cell(profile, &format!("{profile}-learned"), &["-p", learned.to_str().unwrap()], refusal);
        }
    }
    eprintln!("[matrix] {fixture}: all cells in {:?}", t0.elapsed());
}

/// One fixture's matrix: where its results go and what runs them.
struct Matrix<'a> {
    row: &'a Row,
    src: String,
    tmp: &'a Path,
    tmpdir: &'a Path,
    runc: &'a Path,
}

impl Matrix<'_> {
    /// Rebuild with the built-in `profile` (then `extra` arguments) into the layout under `tag`
    /// and hold the result to the row, or the refusal to what it must say.
    fn cell(&self, profile: &str, tag: &str, extra: &[&str], refusal: Option<&Refusal>) {
        let row = self.row;
        let t = Instant::now();
        let cell = format!("{} × {tag}", row.fixture);
        let out_layout = self.tmp.join("out");
        let report_path = self.tmp.join(format!("{tag}.json"));
        let dst = format!("oci:{}:{tag}", out_layout.display());
        let mut args = vec!["rebuild", &self.src, &dst, "-p", profile];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--report", report_path.to_str().unwrap()]);
        if row.verify {
            args.push("--verify-run");
        }
        let out = harden_in(self.tmpdir, &args);
        if row.verify {
            assert_nothing_left(self.tmpdir);
        }
        if let Some(r) = refusal {
            assert_eq!(out.status.code(), Some(3), "{cell}: expected a refusal ({})\n{}", r.why, dump(&out));
            let last = stderr_str(&out).lines().last().unwrap_or("").to_string();
            assert!(last.contains(r.says), "{cell}: the refusal should say {:?}: {last:?}", r.says);
            let tagged = out_layout.join("index.json").exists() && has_tag(&out_layout, tag);
            assert!(!tagged, "{cell}: a refused rebuild wrote its result");
            eprintln!("[matrix] {cell}: refused as expected in {:?}: {last}", t.elapsed());
            return;
        }
        let pinned = expect_pinned(&out);
        let report = read_json(&report_path);
        assert_eq!(report["guard"]["broken"], json!([]), "{cell}: the guard passes: {report:#}");
        assert_eq!(report["result"]["digest"].as_str(), Some(pinned.digest.as_str()), "{cell}");
        if row.verify {
            assert_eq!(report["verify_run"]["result"]["passed"], json!(true), "{cell}: {:#}", report["verify_run"]);
        }
        check_copies(&cell, &report, profile, row);
        if matches!(row.run, Run::Verified) {
            eprintln!("[matrix] {cell}: ok (--verify-run passes) in {:?}", t.elapsed());
            return;
        }

        let bundle = self.tmp.join(format!("bundle-{tag}"));
        umoci_unpack(&dst, &bundle);
        let rootfs = bundle.join("rootfs");
        for (_, path, present) in row.files.iter().filter(|(p, _, _)| p.contains(&profile)) {
            let there = rootfs.join(path).symlink_metadata().is_ok();
            assert_eq!(there, *present, "{cell}: /{path} should be {}", if *present { "there" } else { "gone" });
        }
        if row.deb_cache {
            let debs = std::fs::read_dir(rootfs.join("var/cache/apt/archives"))
                .map(|d| {
                    d.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".deb"))).count()
                })
                .unwrap_or(0);
            if profile == "passthrough" {
                assert!(debs > 50, "{cell}: debootstrap's .debs are kept: {debs}");
            } else {
                assert_eq!(debs, 0, "{cell}: every cached .deb goes");
            }
        }
        let uid = if profile == "passthrough" { 0 } else { NONROOT };
        runs(&cell, self.runc, &bundle, self.tmp, row.run, uid);
        std::fs::remove_dir_all(&bundle).unwrap();
        eprintln!("[matrix] {cell}: ok in {:?}", t.elapsed());
    }
}

/// The fixture, checked to be what its row says it is (`fixture()` matches tags).
fn fixture_named(name: &str) -> Fixture {
    let fx = fixture(name);
    assert_eq!(fx.tag, name);
    fx
}

/// True if the layout's index.json has a manifest tagged `tag`.
fn has_tag(layout: &Path, tag: &str) -> bool {
    let index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .is_some_and(|a| a.iter().any(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag)))
}

/// Every copy the report removes followed a program or secret removal (never a cache, document
/// or log), and under strict the row's hidden copies each name the removal they followed.
fn check_copies(cell: &str, report: &Value, profile: &str, row: &Row) {
    let removed = report["plan"]["removed"].as_array().unwrap_or_else(|| panic!("{cell}: no plan.removed"));
    for r in removed.iter().filter(|r| r.get("copy_of").is_some()) {
        let origin = r["copy_of"]["origin"].as_str().unwrap_or("");
        assert!(
            ["@shells", "@package-managers", "@login", "@network-tools", "@dev-tools", "@secrets"]
                .iter()
                .any(|g| origin.starts_with(g)),
            "{cell}: a copy followed a removal that is not a program's or a secret's: {r}"
        );
        assert_eq!(r["rule"].as_str().map(|s| s.starts_with("copy of /")), Some(true), "{cell}: {r}");
    }
    if profile != "strict" {
        return;
    }
    for (path, original) in row.strict_copies {
        let r = removed
            .iter()
            .find(|r| r["path"] == format!("/{path}"))
            .unwrap_or_else(|| panic!("{cell}: /{path} is not in plan.removed"));
        assert_eq!(r["copy_of"]["path"], *original, "{cell}: {r}");
    }
}

/// Start the result with runc and see it work: HTTP from a client in its network namespace, or
/// the CMD's output; the process runs as `uid`.
fn runs(cell: &str, runc: &Path, bundle: &Path, dir: &Path, run: Run, uid: u32) {
    let cfg_path = bundle.join("config.json");
    let mut cfg = read_json(&cfg_path);
    cfg["process"]["terminal"] = json!(false);
    assert_eq!(cfg["process"]["user"]["uid"], json!(uid), "{cell}: the configured user");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    match run {
        Run::Prints(text) => {
            let out = runc_run(bundle);
            assert!(out.status.success(), "{cell}: the CMD fails:\n{}", dump(&out));
            assert_eq!(stdout_str(&out), text, "{cell}");
        }
        Run::Verified => unreachable!("{cell}: a verified row is not run again"),
        Run::Serves => {
            let d = Detached::start_listening(runc, bundle, dir, "matrix", 8080);
            let out = run_with_timeout(
                Command::new(require_tool("nsenter"))
                    .args(["--net", &format!("--target={}", d.pid)])
                    .arg(require_tool("curl"))
                    .args(["-sS", "--max-time", "10", "http://127.0.0.1:8080/healthz"]),
            );
            assert!(out.status.success(), "{cell}: no HTTP answer:\n{}\n{}", dump(&out), d.logs());
            assert_eq!(stdout_str(&out), "ok\n", "{cell}: {}", d.logs());
            let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid)).unwrap();
            let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
            assert_eq!(uid_line.split_whitespace().nth(1), Some(uid.to_string().as_str()), "{cell}: {uid_line}");
        }
    }
}

#[test]
fn matrix_debian_minbase() {
    matrix("debian");
}

#[test]
fn matrix_app() {
    matrix("app");
}

#[test]
fn matrix_app_shell_form_cmd() {
    matrix("app-shellcmd");
}

#[test]
fn matrix_app_with_debootstrap_deb_cache() {
    matrix("app-debs");
}

#[test]
fn matrix_app_with_pip_cache_and_doc_copies() {
    matrix("app-pipdocs");
}

#[test]
fn matrix_app_with_hidden_tool_copies() {
    matrix("app-hidden");
}

#[test]
fn matrix_nginx_verify_run() {
    matrix("nginx");
}

#[test]
fn matrix_gosu_service_verify_run() {
    matrix("gosu-service");
}
