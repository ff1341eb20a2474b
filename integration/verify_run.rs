//! `rebuild --verify-run` and `harden learn` on the fixtures shaped like official images
//! (integration/build-image.sh: `nginx` — a shell entrypoint, root, port 80, Debian's nginx
//! writing root-owned directories; `gosu-service` — a root entrypoint that takes its VOLUME and
//! drops to uid 999 with gosu).
//!
//! What could fail: the default profile's result of nginx runs as 65532 and cannot write what
//! nginx writes, so `--verify-run` must refuse (exit 3) naming the failure and push nothing;
//! with the writable directories declared (as `harden learn` finds them) and handed over, the
//! rebuild passes and the result serves HTTP 200 under runc with its contract applied. No
//! container, mount or temporary directory is left behind.

use crate::common::*;
use crate::contract::apply_contract;
use crate::profiles::{runc_exec, Detached};
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// Containers runc knows whose id harden gives its verify runs.
fn verify_containers() -> Vec<String> {
    let out = run_ok(Command::new(require_tool("runc")).args(["list", "-q"]));
    stdout_str(&out)
        .lines()
        .filter(|l| l.starts_with("harden-verify-") || l.starts_with("harden-learn-"))
        .map(String::from)
        .collect()
}

/// Mounts on the host that point into `dir` (a bundle left mounted).
fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy().to_string();
    text.lines().filter(|l| l.split_whitespace().nth(4).is_some_and(|m| m.starts_with(&d))).map(String::from).collect()
}

/// `harden` with TMPDIR set to `tmpdir` (so what a run leaves there can be seen).
pub(crate) fn harden_in(tmpdir: &Path, args: &[&str]) -> std::process::Output {
    harden_env(args, &[("TMPDIR", tmpdir.as_os_str())])
}

pub(crate) fn assert_nothing_left(tmpdir: &Path) {
    assert_eq!(verify_containers(), Vec::<String>::new(), "containers left behind");
    let left: Vec<_> = std::fs::read_dir(tmpdir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
    assert!(mounts_under(tmpdir).is_empty(), "mounts left: {:?}", mounts_under(tmpdir));
}

/// An HTTP GET of `path` on port `port` in the network namespace of `pid`: the status code.
fn http_status(pid: u32, port: u16, path: &str) -> String {
    let out = run_with_timeout(
        Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .arg(require_tool("curl"))
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{port}{path}")),
    );
    stdout_str(&out)
}

/// The writable directories nginx needs (what `harden learn` prints for the fixture).
const NGINX_PROFILE: &str =
    "[runtime]\nwritable = [\"/var/cache/nginx\", \"/var/lib/nginx\", \"/var/log/nginx\", \"/run\"]\n\
                             [verify]\nhttp = \"http://localhost:80/\"\n";

#[test]
fn verify_run_refuses_the_default_profile_on_nginx_and_pushes_nothing() {
    require_root();
    require_tool("runc");
    let tmp = tempdir("verify-nginx-default");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let fx = fixture("nginx");
    let layout = tmp.path().join("out");
    let report = tmp.path().join("report.json");
    let out = harden_in(
        &tmpdir,
        &[
            "rebuild",
            &fx.oci_ref(),
            &format!("oci:{}:hard", layout.display()),
            "--verify-run",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    expect_exit(&out, 3);
    let err = stderr_str(&out);
    assert!(err.contains("verify-run: source passes: TCP connect to 80/tcp"), "{err}");
    assert!(err.contains("the source passes TCP connect to 80/tcp and the result does not"), "{err}");
    // The result's own words: the entrypoint cannot make nginx's directory (65532, read-only root).
    assert!(err.contains("cannot create directory '/var/cache/nginx'"), "{err}");
    assert!(err.contains("Read-only file system") || err.contains("Permission denied"), "{err}");
    assert!(err.contains("nothing was pushed"), "{err}");
    assert!(!layout.join("index.json").exists(), "a manifest was stored");
    assert_nothing_left(&tmpdir);
}

#[test]
fn verify_run_passes_with_the_writable_paths_handed_over_and_the_result_serves_under_its_contract() {
    require_root();
    let runc = require_tool("runc");
    let tmp = tempdir("verify-nginx-learned");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let fx = fixture("nginx");
    let profile = tmp.path().join("nginx.toml");
    std::fs::write(&profile, NGINX_PROFILE).unwrap();
    let layout = tmp.path().join("out");
    let (report, contract_file) = (tmp.path().join("report.json"), tmp.path().join("contract.json"));
    let out = harden_in(
        &tmpdir,
        &[
            "rebuild",
            &fx.oci_ref(),
            &format!("oci:{}:hard", layout.display()),
            "-p",
            "baseline",
            "-p",
            profile.to_str().unwrap(),
            "--verify-run",
            "--report",
            report.to_str().unwrap(),
            "--contract",
            contract_file.to_str().unwrap(),
        ],
    );
    expect_pinned(&out);
    let err = stderr_str(&out);
    assert!(err.contains("verify-run: result passes: HTTP GET :80/"), "{err}");
    assert_nothing_left(&tmpdir);
    // The report and the plan name each path handed over.
    let r = read_json(&report);
    let handed: Vec<(String, String)> = r["plan"]["handed_over"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["path"].as_str().unwrap().to_string(), h["owner"].as_str().unwrap().to_string()))
        .collect();
    let paths: Vec<&str> = handed.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(paths, ["/var/cache/nginx", "/var/lib/nginx", "/var/log/nginx", "/run"], "{r:#}");
    assert!(handed.iter().all(|h| h.1 == "65532:65532"), "{handed:?}");
    assert_eq!(r["verify_run"]["result"]["passed"], true, "{r:#}");
    assert!(err.contains("handed /var/lib/nginx to 65532:65532"), "{err}");

    // The result, unpacked by umoci, under its contract: serves HTTP 200 as 65532.
    let contract = read_json(&contract_file);
    assert_eq!(contract["securityContext"]["capabilities"]["add"], json!(["NET_BIND_SERVICE"]), "{contract:#}");
    let bundle = tmp.path().join("bundle");
    umoci_unpack(&format!("oci:{}:hard", layout.display()), &bundle);
    // The image's directories are the user's (the image works without the mounts too).
    for d in ["var/cache/nginx", "var/lib/nginx", "var/log/nginx"] {
        let m = std::fs::metadata(bundle.join("rootfs").join(d)).unwrap();
        assert_eq!(
            (std::os::unix::fs::MetadataExt::uid(&m), std::os::unix::fs::MetadataExt::gid(&m)),
            (65532, 65532),
            "{d}"
        );
    }
    apply_contract(&bundle, &contract, None, &tmp.path().join("volumes"));
    {
        let d = Detached::start_listening(&runc, &bundle, tmp.path(), "verify-nginx", 80);
        assert_eq!(http_status(d.pid, 80, "/"), "200", "{}", d.logs());
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid)).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(uid.split_whitespace().skip(1).collect::<Vec<_>>(), ["65532"; 4]);
        let out = runc_exec(&d.container, &["/bin/sh", "-c", "touch /etc/x"]);
        assert!(!out.status.success(), "the root is writable under the contract");
    }
}

#[test]
fn learn_lists_what_nginx_writes_and_its_port_and_leaves_nothing() {
    require_root();
    require_tool("runc");
    let tmp = tempdir("learn-nginx");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let out = harden_in(&tmpdir, &["learn", &fixture("nginx").oci_ref()]);
    assert!(out.status.success(), "{}", dump(&out));
    let text = stdout_str(&out);
    let writable = text.lines().find(|l| l.starts_with("writable = ")).unwrap_or_else(|| panic!("{text}"));
    for d in ["\"/var/cache/nginx\"", "\"/var/lib/nginx\"", "\"/var/log/nginx\"", "\"/run\""] {
        assert!(writable.contains(d), "{d} missing: {text}");
    }
    assert!(text.contains("listened on 80/tcp") && text.contains("below 1024"), "{text}");
    assert!(text.contains("http = \"http://localhost:80/\""), "{text}");
    assert!(text.contains("needs a shell"), "{text}");
    // The snippet is a profile harden reads.
    let snippet = tmp.path().join("learned.toml");
    std::fs::write(&snippet, &text).unwrap();
    let out = harden(&["profile", "validate", snippet.to_str().unwrap()]);
    assert!(out.status.success(), "{}", dump(&out));
    assert_nothing_left(&tmpdir);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("harden-learn") && !mounts.contains(tmpdir.to_str().unwrap()), "an overlay is left");
}

#[test]
fn learn_finds_the_user_a_gosu_entrypoint_drops_to() {
    require_root();
    let tmp = tempdir("learn-gosu");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let out = harden_in(&tmpdir, &["learn", &fixture("gosu-service").oci_ref()]);
    assert!(out.status.success(), "{}", dump(&out));
    let text = stdout_str(&out);
    assert!(text.contains("[config]\nuser = \"dbuser\"\nuid = 999\ngid = 999\n"), "{text}");
    assert!(text.contains("tcp = [5432]") && text.contains("VOLUME /var/lib/db: data"), "{text}");
    assert_nothing_left(&tmpdir);
}
