//! The runtime contract, proven by running it: the hardened app, unpacked by umoci, runs under
//! runc with exactly what its contract says — read-only root, a tmpfs for each contract path and
//! no other, the contract's capability sets (empty), no-new-privileges, the numeric user — and
//! starts, serves and passes its health check. The same app under a contract that leaves out a
//! path it writes fails to start, so the test can fail.
//!
//! The fixture app writes nothing, so the test gives it something to write: its entrypoint runs
//! behind a three-line Python prelude that records its pid in /var/cache/app (declared in the
//! profile's `[runtime] writable`) before it serves, as a real server's pid or cache file would.

use crate::common::*;
use crate::profiles::{runc_exec, Detached};
use serde_json::{json, Value};
use std::path::Path;

const APP_PROFILE: &str = "samples/app-profile.toml";
const PRELUDE: &str = "import os, runpy\nopen('/var/cache/app/server.pid', 'w').write(str(os.getpid()))\n\
                       runpy.run_path('/app/server.py', run_name='__main__')";

/// The runc config of `bundle` made to run exactly what `contract` says — its numeric user,
/// read-only root, capabilities, no-new-privileges, and its docker flags' `--tmpfs PATH[:OPTS]`
/// and `-v NAME:PATH` (a fresh directory under `volumes` owned by the user, as a new named
/// volume or `fsGroup` gives it) — with `args` as the process, or the image's own.
pub(crate) fn apply_contract(bundle: &Path, contract: &Value, args: Option<&[&str]>, volumes: &Path) {
    let path = bundle.join("config.json");
    let mut rt = read_json(&path);
    let sc = &contract["securityContext"];
    rt["process"]["terminal"] = json!(false);
    if let Some(args) = args {
        rt["process"]["args"] = json!(args);
    }
    rt["process"]["user"] = json!({"uid": sc["runAsUser"], "gid": sc["runAsGroup"]});
    rt["root"]["readonly"] = json!(sc["readOnlyRootFilesystem"]);
    rt["process"]["noNewPrivileges"] = json!(!sc["allowPrivilegeEscalation"].as_bool().unwrap());
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    let caps: Vec<String> =
        sc["capabilities"]["add"].as_array().unwrap().iter().map(|c| format!("CAP_{}", c.as_str().unwrap())).collect();
    for set in ["bounding", "effective", "inheritable", "permitted", "ambient"] {
        rt["process"]["capabilities"][set] = json!(caps);
    }
    let mounts = rt["mounts"].as_array_mut().unwrap();
    // The runtime's own tmpfs mounts (/dev, /dev/shm) stay; any other writable one would widen
    // the contract.
    mounts.retain(|m| m["type"] != "tmpfs" || m["destination"].as_str().is_some_and(|d| d.starts_with("/dev")));
    // A runtime gives a tmpfs the mode of the directory it covers (mode= is kept only over a
    // missing one), so the user owns it through the flag's uid=/gid=.
    let flags: Vec<&str> = contract["dockerRunArgs"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    for w in flags.windows(2) {
        match w[0] {
            "--tmpfs" => {
                let (dest, opts) = w[1].split_once(':').unwrap_or((w[1], ""));
                let mut options = vec!["nosuid".to_string(), "nodev".to_string(), "mode=1777".to_string()];
                options.extend(opts.split(',').filter(|o| !o.is_empty()).map(String::from));
                mounts.push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}));
            }
            "-v" => {
                let (name, dest) = w[1].split_once(':').unwrap();
                let host = volumes.join(name);
                std::fs::create_dir_all(&host).unwrap();
                let (u, g) = (sc["runAsUser"].as_u64().unwrap() as u32, sc["runAsGroup"].as_u64().unwrap() as u32);
                std::os::unix::fs::chown(&host, Some(u), Some(g)).unwrap();
                mounts.push(json!({"destination": dest, "type": "bind", "source": host, "options": ["rbind", "rw"]}));
            }
            _ => {}
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&rt).unwrap()).unwrap();
}

/// Mount points of `pid`'s mount namespace with their file system type and options.
fn mounts_of(pid: u32) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    text.lines()
        .map(|l| {
            let (left, right) = l.split_once(" - ").unwrap();
            let f: Vec<&str> = left.split_whitespace().collect();
            let fstype = right.split_whitespace().next().unwrap().to_string();
            (f[4].to_string(), fstype, f[5].to_string())
        })
        .collect()
}

fn status_field(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).unwrap().trim().to_string()
}

#[test]
fn contract_runs_the_hardened_app_under_runc_and_fails_without_a_needed_path() {
    require_root();
    let runc = require_tool("runc");
    let tmp = tempdir("contract");
    let fx = fixture("app");
    let extra = tmp.path().join("runtime.toml");
    std::fs::write(&extra, "[runtime]\nwritable = [\"/var/cache/app\"]\n").unwrap();
    let layout = tmp.path().join("out");
    let contract_file = tmp.path().join("contract.json");
    let out = harden(&[
        "rebuild",
        &fx.oci_ref(),
        &format!("oci:{}:hard", layout.display()),
        "-p",
        APP_PROFILE,
        "-p",
        extra.to_str().unwrap(),
        "--contract",
        contract_file.to_str().unwrap(),
    ]);
    expect_pinned(&out);
    let contract = read_json(&contract_file);
    let sc = &contract["securityContext"];
    assert_eq!(sc["runAsUser"], 65532, "{contract:#}");
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false, "strict strips every setuid bit: {contract:#}");
    assert_eq!(sc["capabilities"]["add"], json!([]), "port 8080 needs no capability: {contract:#}");
    let paths: Vec<&str> =
        contract["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/tmp", "/var/cache/app"]);
    // The same contract is in the manifest, as skopeo reads it.
    let raw = skopeo_inspect_raw(&format!("oci:{}:hard", layout.display()));
    let annotated: Value = serde_json::from_str(raw["annotations"]["dev.harden.contract"].as_str().unwrap()).unwrap();
    assert_eq!(annotated, contract);
    // `harden contract` on the result, without the extra profile: no /var/cache/app.
    let out = harden(&["contract", &format!("oci:{}:hard", layout.display()), "-q"]);
    assert!(out.status.success(), "{}", dump(&out));
    let short: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(short["volumeMounts"], json!([{"name": "tmp", "mountPath": "/tmp"}]));
    assert_eq!(short["securityContext"], contract["securityContext"]);

    // The config as stored (skopeo's --config view has no Healthcheck).
    let manifest = read_json(&oci_blob_path(&layout, &oci_manifest_digest(&layout, "hard")));
    let config = read_json(&oci_blob_path(&layout, manifest["config"]["digest"].as_str().unwrap()));
    let health: Vec<String> = config["config"]["Healthcheck"]["Test"].as_array().expect("a health check")[1..]
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let health: Vec<&str> = health.iter().map(String::as_str).collect();
    let args = ["/usr/bin/python3", "-c", PRELUDE];

    // 1. Under the full contract: starts, serves, passes its health check.
    let bundle = tmp.path().join("bundle");
    umoci_unpack(&format!("oci:{}:hard", layout.display()), &bundle);
    apply_contract(&bundle, &contract, Some(&args), &tmp.path().join("volumes"));
    {
        let d = Detached::start_listening(&runc, &bundle, tmp.path(), "contract", 8080);
        let (pid, logs) = (d.pid, || d.logs());
        // What the kernel says the process runs with.
        assert_eq!(status_field(pid, "Uid").split_whitespace().collect::<Vec<_>>(), ["65532"; 4]);
        assert_eq!(status_field(pid, "Gid").split_whitespace().collect::<Vec<_>>(), ["65532"; 4]);
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(status_field(pid, set), "0000000000000000", "{set}");
        }
        assert_eq!(status_field(pid, "NoNewPrivs"), "1");
        let mounts = mounts_of(pid);
        let root = mounts.iter().rfind(|m| m.0 == "/").unwrap();
        assert!(root.2.split(',').any(|o| o == "ro"), "the root is read-only: {root:?}");
        let tmpfs: Vec<&str> = mounts
            .iter()
            .filter(|m| {
                m.1 == "tmpfs" && !m.0.starts_with("/dev") && !m.0.starts_with("/sys") && !m.0.starts_with("/proc")
            })
            .map(|m| m.0.as_str())
            .collect();
        assert_eq!(tmpfs, ["/tmp", "/var/cache/app"], "exactly the contract's writable paths: {mounts:?}");
        let out = runc_exec(&d.container, &health);
        assert!(out.status.success(), "the health check fails:\n{}\n{}", dump(&out), logs());
        // Nothing else is writable.
        let out = runc_exec(&d.container, &["/usr/bin/python3", "-c", "open('/app/x', 'w')"]);
        assert!(!out.status.success(), "wrote outside the contract's paths");
    }

    // 2. The contract without /var/cache/app: the app cannot start.
    let bundle2 = tmp.path().join("bundle2");
    umoci_unpack(&format!("oci:{}:hard", layout.display()), &bundle2);
    apply_contract(&bundle2, &short, Some(&args), &tmp.path().join("volumes"));
    let out = runc_run(&bundle2);
    assert!(!out.status.success(), "the app started without its writable path:\n{}", dump(&out));
    let err = stderr_str(&out);
    assert!(err.contains("Read-only file system") || err.contains("No such file"), "{err}");
}
