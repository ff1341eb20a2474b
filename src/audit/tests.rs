//! One crafted image per check, each with its negative case.
//!
//! Owns: the audit's unit tests. Must not: touch the network or the disk beyond temp dirs.

use super::*;
use crate::fs::tests::{entry, layer};
use crate::layer::tar::Kind;
use crate::scan::EntryInfo;
use crate::scan::LayerIndex;
use serde_json::json;

fn file(path: &str, mode: u32, body: &[u8]) -> EntryInfo {
    let mut e = entry(path, Kind::File, None);
    e.mode = mode;
    e.size = body.len() as u64;
    if !body.is_empty() {
        e.prefix = Some(body.to_vec().into_boxed_slice());
    }
    e
}

fn dir(path: &str) -> EntryInfo {
    entry(path, Kind::Dir, None)
}

fn ids(f: &[Finding]) -> Vec<&'static str> {
    f.iter().map(|f| f.id.as_str()).collect()
}

fn find<'a>(f: &'a [Finding], id: &str) -> Option<&'a Finding> {
    f.iter().find(|x| x.id == id)
}

fn paths(f: &[Finding], id: &str) -> Vec<String> {
    find(f, id).map(|f| f.evidence.iter().filter_map(|e| e.path.clone()).collect()).unwrap_or_default()
}

/// A config with a non-root user and a health check: no config findings of its own.
fn quiet_config() -> Value {
    json!({"config": {"User": "65532:65532", "Healthcheck": {"Test": ["CMD", "/check"]}}, "history": []})
}

fn run(layers: Vec<crate::scan::LayerIndex>, config: &Value) -> Vec<Finding> {
    audit(&FinalFs::build(layers), config, &AuditContext::default())
}

const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\ntoor:x:0:0::/root:/bin/sh\n";

#[test]
fn root_user_forms() {
    let fs = FinalFs::build(vec![layer(vec![dir("etc"), file("etc/passwd", 0o644, PASSWD)])]);
    let user = |u: &str| {
        let mut c = quiet_config();
        c["config"]["User"] = json!(u);
        find(&audit(&fs, &c, &AuditContext::default()), "HARDEN-USER-ROOT").is_some()
    };
    for root in ["", "root", "0", "0:0", "root:root", "0:65532", "toor", " 0 "] {
        assert!(user(root), "{root:?} is root");
    }
    for not in ["65532", "65532:65532", "nobody", "1000:0", "ghost"] {
        assert!(!user(not), "{not:?} is not root");
    }
    let mut c = quiet_config();
    c["config"]["User"] = json!("toor");
    let f = audit(&fs, &c, &AuditContext { layers: vec![Some("sha256:l0".into())], ..Default::default() });
    let ev = &find(&f, "HARDEN-USER-ROOT").unwrap().evidence;
    assert_eq!(ev[0].field.as_deref(), Some("config.User"));
    assert_eq!(ev[1].path.as_deref(), Some("/etc/passwd"));
    assert_eq!(ev[1].layer.as_deref(), Some("sha256:l0"));
    let mut c = quiet_config();
    c["config"].as_object_mut().unwrap().remove("User");
    assert!(find(&run(vec![], &c), "HARDEN-USER-ROOT").is_some(), "no User at all is root");
}

#[test]
fn healthcheck_missing_or_disabled() {
    let mut c = quiet_config();
    assert!(find(&run(vec![], &c), "HARDEN-HEALTHCHECK-MISSING").is_none());
    c["config"]["Healthcheck"] = json!({"Test": ["NONE"]});
    assert!(find(&run(vec![], &c), "HARDEN-HEALTHCHECK-MISSING").is_some());
    c["config"].as_object_mut().unwrap().remove("Healthcheck");
    assert!(find(&run(vec![], &c), "HARDEN-HEALTHCHECK-MISSING").is_some());
}

#[test]
fn setuid_each_listed_on_the_final_filesystem() {
    let l0 = layer(vec![
        dir("usr"),
        dir("usr/bin"),
        file("usr/bin/su", 0o4755, b""),
        file("usr/bin/chage", 0o2755, b""),
        file("usr/bin/gone", 0o4755, b""),
        file("usr/bin/ls", 0o755, b""),
    ]);
    let l1 = layer(vec![entry("usr/bin/.wh.gone", Kind::File, None)]);
    let f = run(vec![l0, l1], &quiet_config());
    assert_eq!(paths(&f, "HARDEN-FILE-SETUID"), vec!["/usr/bin/chage", "/usr/bin/su"]);
    let ev = &find(&f, "HARDEN-FILE-SETUID").unwrap().evidence;
    assert!(ev[0].detail.as_deref().unwrap().starts_with("setgid, mode 2755"), "{ev:?}");
    assert_eq!(ev[1].layer_index, Some(0));

    // --profile: setuid_allow says which are expected.
    let dirp = tempfile::tempdir().unwrap();
    let p = dirp.path().join("p.toml");
    std::fs::write(&p, "[files]\nsetuid_allow = [\"/usr/bin/su\"]\n").unwrap();
    let profile = crate::profile::load(&[p.display().to_string()]).unwrap();
    let fs = FinalFs::build(vec![layer(vec![file("usr/bin/su", 0o4755, b""), file("usr/bin/chage", 0o2755, b"")])]);
    let f = audit(&fs, &quiet_config(), &AuditContext { profile: Some(&profile), ..Default::default() });
    assert_eq!(paths(&f, "HARDEN-FILE-SETUID"), vec!["/usr/bin/chage"]);
}

#[test]
fn capabilities_and_world_writable_but_not_sticky_dirs_or_symlinks() {
    let mut ping = file("usr/bin/ping", 0o755, b"");
    ping.caps = true;
    let mut tmp = dir("tmp");
    tmp.mode = 0o1777;
    let mut open = dir("srv/open");
    open.mode = 0o777;
    let mut link = entry("srv/link", Kind::Symlink, Some("open"));
    link.mode = 0o777;
    let f = run(
        vec![layer(vec![ping, tmp, dir("srv"), open, link, file("srv/w", 0o666, b"x"), file("srv/r", 0o644, b"x")])],
        &quiet_config(),
    );
    assert_eq!(paths(&f, "HARDEN-FILE-CAPABILITIES"), vec!["/usr/bin/ping"]);
    assert_eq!(paths(&f, "HARDEN-FILE-WORLD-WRITABLE"), vec!["/srv/open", "/srv/w"]);
}

fn usr_merged(extra: Vec<EntryInfo>) -> crate::scan::LayerIndex {
    let mut v = vec![
        entry("bin", Kind::Symlink, Some("usr/bin")),
        dir("usr"),
        dir("usr/bin"),
        file("usr/bin/dash", 0o755, b""),
        entry("usr/bin/sh", Kind::Symlink, Some("dash")),
        file("usr/bin/bash", 0o755, b""),
        file("usr/bin/python3", 0o755, b""),
        file("usr/bin/apt-get", 0o755, b""),
        file("usr/bin/dpkg-query", 0o755, b""),
    ];
    v.extend(extra);
    layer(v)
}

#[test]
fn shells_and_package_managers_through_usr_merge() {
    let f = run(vec![usr_merged(vec![])], &quiet_config());
    assert_eq!(paths(&f, "HARDEN-SHELLS"), vec!["/usr/bin/bash", "/usr/bin/dash", "/usr/bin/sh"]);
    assert_eq!(find(&f, "HARDEN-SHELLS").unwrap().fix, "[files] remove = [\"@shells\"] (profile strict)");
    assert_eq!(paths(&f, "HARDEN-PACKAGE-MANAGERS"), vec!["/usr/bin/apt-get", "/usr/bin/dpkg-query"]);
    // Without shells: no finding.
    let f = run(vec![layer(vec![dir("usr"), dir("usr/bin"), file("usr/bin/python3", 0o755, b"")])], &quiet_config());
    assert!(find(&f, "HARDEN-SHELLS").is_none() && find(&f, "HARDEN-PACKAGE-MANAGERS").is_none(), "{:?}", ids(&f));
}

#[test]
fn package_caches_grouped_and_empty_files_ignored() {
    let f = run(
        vec![layer(vec![
            dir("var/lib/apt/lists"),
            file("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", 0o644, b"x"),
            file("var/lib/apt/lists/lock", 0o640, b""),
            dir("var/lib/apt/lists/partial"),
            dir("root/.cache/pip"),
            dir("root/.cache/pip/http"),
            file("root/.cache/pip/http/a", 0o644, b"aaaa"),
            file("root/.cache/pip/http/b", 0o644, b"bb"),
            file("var/cache/apt/archives/fake_1.0_amd64.deb", 0o644, b"deb"),
            file("var/lib/dpkg/status", 0o644, b"Package: x\n"),
            dir("root/.npm"),
        ])],
        &quiet_config(),
    );
    assert_eq!(
        paths(&f, "HARDEN-PACKAGE-CACHES"),
        vec![
            "/root/.cache/pip",
            "/var/cache/apt/archives/fake_1.0_amd64.deb",
            "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease"
        ]
    );
    let pip = &find(&f, "HARDEN-PACKAGE-CACHES").unwrap().evidence[0];
    assert_eq!(pip.detail.as_deref(), Some("2 files (6 bytes)"));
}

const KEY: &[u8] = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----\n";
const CERT: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIFazCCA1OgAwIBAgIRAIIQz7DSQONZRGPgu2OCiwAwDQYJKoZIhvcNAQELBQAw\n-----END CERTIFICATE-----\n";

#[test]
fn secret_files_by_name_not_in_library_code() {
    let f = run(
        vec![layer(vec![
            file("root/.ssh/id_rsa", 0o600, KEY),
            file("app/.env", 0o600, b"APP_ENV=production\n"),
            dir("home/u/.aws"),
            file("home/u/.aws/credentials", 0o600, b"[default]\n"),
            file("etc/ssl/private/ssl-cert-snakeoil.key", 0o640, KEY),
            file("usr/lib/ssl/private/server.key", 0o600, KEY),
            file("usr/lib/python3/dist-packages/dotenv/tests/.env", 0o644, b"A=1\n"),
            file("app/empty/.env", 0o644, b""),
        ])],
        &quiet_config(),
    );
    assert_eq!(
        paths(&f, "HARDEN-SECRET-FILE"),
        vec![
            "/app/.env",
            "/etc/ssl/private/ssl-cert-snakeoil.key",
            "/home/u/.aws",
            "/root/.ssh/id_rsa",
            "/usr/lib/ssl/private/server.key"
        ]
    );
    // Named secrets are not reported again by content.
    assert!(find(&f, "HARDEN-SECRET-CONTENT").is_none(), "{:?}", find(&f, "HARDEN-SECRET-CONTENT"));
    assert_eq!(f[0].level, Level::Fatal);
}

#[test]
fn secret_content_without_the_usual_false_positives() {
    let f = run(
        vec![layer(vec![
            file("app/tls/server.pem", 0o600, KEY),
            file("app/settings.py", 0o644, b"AWS_KEY = 'AKIAIOSFODNN7EXAMPLE'\n"),
            // CA certificates are not secrets.
            file("etc/ssl/certs/ca-certificates.crt", 0o644, CERT),
            file("etc/ssl/certs/ISRG_Root_X1.pem", 0o644, CERT),
            file("usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt", 0o644, CERT),
            // Library code is skipped, as real scanners skip it.
            file("usr/lib/python3/dist-packages/django/conf/settings.py", 0o644, b"SECRET = 'AKIAIOSFODNN7EXAMPLE'\n"),
            file("usr/lib/python3/dist-packages/x/test_key.pem", 0o644, KEY),
            file("app/docs/keys.md", 0o644, KEY),
            // Binaries are not read as text.
            file("app/bin/tool", 0o755, b"\x7fELF\x02\x01AKIAIOSFODNN7EXAMPLE "),
        ])],
        &quiet_config(),
    );
    let found = find(&f, "HARDEN-SECRET-CONTENT").unwrap();
    assert_eq!(paths(&f, "HARDEN-SECRET-CONTENT"), vec!["/app/settings.py", "/app/tls/server.pem"]);
    assert_eq!(found.evidence[0].detail.as_deref(), Some("AWS access key id AKIA…MPLE"));
    assert_eq!(found.evidence[1].detail.as_deref(), Some("PEM block `RSA PRIVATE KEY`"));
    assert_eq!(found.fix, "[files] remove = [\"/app/settings.py\", \"/app/tls/server.pem\"]");
    assert!(find(&f, "HARDEN-SECRET-FILE").is_none());
}

#[test]
fn secrets_in_env_and_history() {
    let mut c = quiet_config();
    c["config"]["Env"] = json!([
        "PATH=/usr/bin",
        "API_TOKEN=abcd1234",
        "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D",
        "DB_PASSWORD_FILE=/run/secrets/db",
        "EMPTY_SECRET=",
        "NOTE=AKIAIOSFODNN7EXAMPLE"
    ]);
    c["history"] = json!([
        {"created_by": "/bin/sh -c #(nop)  ENV DB_PASSWORD=hunter2"},
        {"created_by": "RUN |1 GITHUB_TOKEN=ghp_abc /bin/sh -c make"},
        {"created_by": "/bin/sh -c apt-key adv --keyring=/usr/share/keyrings/x.gpg --recv-keys 00"},
        {"created_by": "/bin/sh -c export PASSWORD=$PASSWORD && ./run"},
        {"created_by": "ENV API_TOKEN=***"},
        {"empty_layer": true},
    ]);
    let f = run(vec![], &c);
    let env: Vec<_> =
        find(&f, "HARDEN-SECRET-ENV").unwrap().evidence.iter().map(|e| e.detail.clone().unwrap()).collect();
    assert_eq!(env, vec!["API_TOKEN looks like a secret", "NOTE holds a AWS access key id AKIA…MPLE"]);
    let hist: Vec<_> = find(&f, "HARDEN-SECRET-HISTORY")
        .unwrap()
        .evidence
        .iter()
        .map(|e| (e.field.clone().unwrap(), e.detail.clone().unwrap()))
        .collect();
    assert_eq!(
        hist,
        vec![
            ("history[0].created_by".to_string(), "DB_PASSWORD=… looks like a secret".to_string()),
            ("history[1].created_by".to_string(), "GITHUB_TOKEN=… looks like a secret".to_string())
        ]
    );
    // Reports never carry the secret.
    let all = serde_json::to_string(&f).unwrap();
    assert!(!all.contains("hunter2") && !all.contains("abcd1234") && !all.contains("ghp_abc"), "{all}");
}

#[test]
fn empty_shadow_passwords_and_duplicate_ids() {
    let shadow = b"root:*:19000:0:99999:7:::\nbob::19000:0:99999:7:::\nalice:!:19000::::::\n";
    let group = b"root:x:0:\nshadow:x:42:\nstaff:x:50:\nwheel:x:50:\n";
    let f = run(
        vec![layer(vec![
            dir("etc"),
            file("etc/passwd", 0o644, PASSWD),
            file("etc/shadow", 0o640, shadow),
            file("etc/group", 0o644, group),
        ])],
        &quiet_config(),
    );
    let empty = &find(&f, "HARDEN-SHADOW-EMPTY-PASSWORD").unwrap().evidence;
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].path.as_deref(), Some("/etc/shadow"));
    assert_eq!(empty[0].detail.as_deref(), Some("account `bob` has an empty password"));
    let dup: Vec<_> =
        find(&f, "HARDEN-ACCOUNT-DUPLICATE-ID").unwrap().evidence.iter().map(|e| e.detail.clone().unwrap()).collect();
    assert_eq!(dup, vec!["uid 0: root, toor", "gid 50: staff, wheel"]);
    // Negative: unique ids, locked passwords.
    let f = run(
        vec![layer(vec![
            file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n"),
            file("etc/shadow", 0o640, b"root:*:1::::::\n"),
        ])],
        &quiet_config(),
    );
    assert!(find(&f, "HARDEN-SHADOW-EMPTY-PASSWORD").is_none() && find(&f, "HARDEN-ACCOUNT-DUPLICATE-ID").is_none());
}

#[test]
fn references_latest_and_unpinned() {
    let fs = FinalFs::build(Vec::<LayerIndex>::new());
    let by = |r: &str| {
        let r = ImageRef::parse(r).unwrap();
        ids(&audit(&fs, &quiet_config(), &AuditContext { reference: Some(&r), ..Default::default() }))
    };
    assert_eq!(by("127.0.0.1:5000/app"), vec!["HARDEN-REFERENCE-LATEST"]);
    assert_eq!(by("127.0.0.1:5000/app:latest"), vec!["HARDEN-REFERENCE-LATEST"]);
    assert_eq!(by("127.0.0.1:5000/app:1.2"), vec!["HARDEN-REFERENCE-UNPINNED"]);
    assert_eq!(by("oci:/x:app"), vec!["HARDEN-REFERENCE-UNPINNED"]);
    assert!(by(&format!("127.0.0.1:5000/app:latest@sha256:{}", "a".repeat(64))).is_empty());
    assert_eq!(by("oci:/x"), vec!["HARDEN-REFERENCE-UNPINNED"]);
}

#[test]
fn signature_missing_or_unknown() {
    let fs = FinalFs::build(Vec::<LayerIndex>::new());
    let with = |s: Signature| audit(&fs, &quiet_config(), &AuditContext { signature: s, ..Default::default() });
    assert!(with(Signature::Found("x".into())).is_empty());
    assert!(with(Signature::NotChecked).is_empty());
    let f = with(Signature::Absent("r:sha256-00.sig".into()));
    assert_eq!(ids(&f), vec!["HARDEN-SIGNATURE-MISSING"]);
    assert_eq!(f[0].level, Level::Info);
    let f = with(Signature::Unknown("connection refused".into()));
    assert!(f[0].evidence[0].detail.as_deref().unwrap().contains("connection refused"));
}

#[test]
fn sensitive_volumes_and_privileged_ports() {
    let mut c = quiet_config();
    c["config"]["Volumes"] = json!({"/proc": {}, "/sys/fs/cgroup/": {}, "/data": {}, "/device": {}});
    c["config"]["ExposedPorts"] = json!({"80/tcp": {}, "8080/tcp": {}, "53/udp": {}, "1024": {}});
    let f = run(vec![], &c);
    let v: Vec<_> =
        find(&f, "HARDEN-VOLUME-SENSITIVE").unwrap().evidence.iter().map(|e| e.detail.clone().unwrap()).collect();
    assert_eq!(v, vec!["/proc", "/sys/fs/cgroup/"]);
    let p: Vec<_> =
        find(&f, "HARDEN-PORT-PRIVILEGED").unwrap().evidence.iter().map(|e| e.detail.clone().unwrap()).collect();
    assert_eq!(p, vec!["80/tcp", "53/udp"]);
    assert_eq!(f[0].id, "HARDEN-VOLUME-SENSITIVE", "fatal first");
}

#[test]
fn escapes_are_found_per_layer_even_when_hidden_later() {
    let mut evil = file("etc/cron.d/x", 0o644, b"x");
    evil.escapes = true;
    let l0 = layer(vec![dir("etc"), dir("etc/cron.d"), evil, file("etc/ok", 0o644, b"")]);
    let l1 = layer(vec![entry("etc/cron.d/.wh.x", Kind::File, None)]);
    let f = audit(
        &FinalFs::build(vec![l0, l1]),
        &quiet_config(),
        &AuditContext { layers: vec![Some("sha256:l0".into()), Some("sha256:l1".into())], ..Default::default() },
    );
    let ev = &find(&f, "HARDEN-LAYER-PATH-ESCAPE").unwrap().evidence;
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].path.as_deref(), ev[0].layer.as_deref()), (Some("/etc/cron.d/x"), Some("sha256:l0")));
    assert!(find(&run(vec![layer(vec![file("etc/ok", 0o644, b"")])], &quiet_config()), "HARDEN-LAYER-PATH-ESCAPE")
        .is_none());
}

#[test]
fn ignore_drops_ids() {
    let ignore = vec!["harden-healthcheck-missing".to_string()];
    let mut c = quiet_config();
    c["config"].as_object_mut().unwrap().remove("Healthcheck");
    let f =
        audit(&FinalFs::build(Vec::<LayerIndex>::new()), &c, &AuditContext { ignore: &ignore, ..Default::default() });
    assert!(f.is_empty(), "{:?}", ids(&f));
}

/// The view a strict rebuild would produce keeps only what the profile chose to keep.
#[test]
fn after_view_of_a_strict_plan() {
    let mut su = file("usr/bin/su", 0o4755, b"");
    su.uid = 0;
    let mut ping = file("usr/bin/ping", 0o755, b"");
    ping.caps = true;
    let mut cp = file("usr/local/bin/setuid-copy", 0o4755, b"");
    cp.caps = false;
    let fs = FinalFs::build(vec![
        usr_merged(vec![
            su,
            ping,
            cp,
            file("var/lib/dpkg/status", 0o644, b"Package: x\n"),
            file("root/.ssh/id_rsa", 0o600, KEY),
            file("var/cache/apt/archives/a.deb", 0o644, b"deb"),
        ]),
        layer(vec![
            dir("app"),
            file("app/.env", 0o600, b"A=1\n"),
            file("app/server.py", 0o755, b"#!/usr/bin/python3\n"),
        ]),
    ]);
    let profile = crate::profile::load(&["strict".into()]).unwrap();
    let plan = crate::plan::plan(&fs, &profile);
    let before = audit(&fs, &quiet_config(), &AuditContext::default());
    for id in [
        "HARDEN-FILE-SETUID",
        "HARDEN-FILE-CAPABILITIES",
        "HARDEN-SHELLS",
        "HARDEN-PACKAGE-MANAGERS",
        "HARDEN-PACKAGE-CACHES",
        "HARDEN-SECRET-FILE",
        "HARDEN-CONTRACT-UNMET",
    ] {
        assert!(find(&before, id).is_some(), "{id} before: {:?}", ids(&before));
    }
    // The contract cannot forbid privilege escalation while the setuid file is there.
    let unmet = find(&before, "HARDEN-CONTRACT-UNMET").unwrap();
    assert!(unmet.evidence.iter().any(|e| e.path.as_deref() == Some("/usr/local/bin/setuid-copy")), "{unmet:#?}");
    let after_fs = after_view(&fs, &plan, None);
    assert!(after_fs.get("usr/bin/python3").is_some() && after_fs.get("var/lib/dpkg/status").is_some());
    assert!(after_fs.get("usr/bin/sh").is_none() && after_fs.get("app/.env").is_none());
    assert_eq!(after_fs.get("usr/local/bin/setuid-copy").unwrap().1.mode, 0o755);
    let after = audit(&after_fs, &quiet_config(), &AuditContext::default());
    assert!(after.is_empty(), "{after:#?}");
    let r = RebuildFindings { before, after: Some(after) };
    assert_eq!(r.summary(), "findings 7 → 0 (fatal 1 → 0)");
}

/// A layer the plan leaves alone is shared with the source's view, not copied (on a 500k-entry
/// layer the copy was 77 MiB of the strict rebuild's peak).
#[test]
fn after_view_shares_the_layers_the_plan_leaves_alone() {
    let untouched = layer((0..100).map(|i| file(&format!("opt/data/{i}.txt"), 0o644, b"x")).collect());
    let fs = FinalFs::build(vec![untouched, layer(vec![file("root/.env", 0o600, b"A=1\n")])]);
    let profile = crate::profile::load(&["strict".into()]).unwrap();
    let plan = crate::plan::plan(&fs, &profile);
    assert!(plan.layers[0].is_unchanged() && !plan.layers[1].is_unchanged(), "{:?}", plan.layers);
    let after = after_view(&fs, &plan, None);
    assert!(std::sync::Arc::ptr_eq(&after.layers[0], &fs.layers[0]), "the untouched layer is shared");
    assert!(!std::sync::Arc::ptr_eq(&after.layers[1], &fs.layers[1]));
    assert!(after.get("opt/data/99.txt").is_some() && after.get("root/.env").is_none());
}

#[test]
fn after_view_adds_the_user_layer_and_promotes_hardlinks() {
    let fs = FinalFs::build(vec![layer(vec![
        dir("etc"),
        file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n"),
        file("root/.env", 0o600, b"A=1\n"),
        entry("app/a", Kind::HardLink, Some("root/.env")),
    ])]);
    // The kept link takes the data (an unkept one would go with the removed file).
    let text = "name = \"t\"\nextends = \"baseline\"\n[files]\nkeep = [\"/app\"]\n";
    let profile = crate::profile::load_str("t.toml", text).unwrap();
    let plan = crate::plan::plan(&fs, &profile);
    let user = crate::config::plan_user(&fs, &profile, &[], 0, crate::layer::codec::OutputCodec::Gzip(1)).unwrap();
    let after = after_view(&fs, &plan, user.layer.as_ref().map(|l| l.blob.as_slice()));
    assert_eq!(after.layers.len(), 2);
    let passwd = String::from_utf8_lossy(after.prefix("etc/passwd").unwrap()).into_owned();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    assert!(after.get("root/.env").is_none());
    assert_eq!(after.get("app/a").unwrap().1.kind, Kind::File);
}

#[test]
fn rebuild_findings_name_result_layers() {
    let mut e = Evidence { path: Some("/x".into()), layer_index: Some(1), ..Default::default() };
    e.layer = None;
    let f = Finding::new(CheckId::FileSetuid, vec![e]);
    let mut r = RebuildFindings { before: vec![], after: Some(vec![f]) };
    r.name_after_layers(&json!([{"digest": "sha256:a"}, {"digest": "sha256:b"}]));
    assert_eq!(r.after.as_ref().unwrap()[0].evidence[0].layer.as_deref(), Some("sha256:b"));
    let j = r.to_json();
    assert_eq!(j["summary"], "findings 0 → 1 (fatal 0 → 0)");
    assert_eq!(j["after"][0]["evidence"][0]["layer"], "sha256:b");
}

#[test]
fn json_shape_is_stable() {
    let f = vec![Finding::new(
        CheckId::FileSetuid,
        vec![Evidence {
            path: Some("/usr/bin/su".into()),
            layer: Some("sha256:aa".into()),
            layer_index: Some(0),
            field: None,
            detail: Some("setuid".into()),
        }],
    )];
    let img = super::ImageInfo { reference: "oci:/x:app".into(), digest: "sha256:m".into(), platform: None };
    let j = format::json(&f, &img, Level::Warn);
    assert_eq!(j["schema"], "harden-check/1");
    assert_eq!(j["failed"], true);
    assert_eq!(j["summary"], json!({"total": 1, "fatal": 0, "warn": 1, "info": 0}));
    assert_eq!(
        j["findings"][0],
        json!({"id": "HARDEN-FILE-SETUID", "level": "warn", "title": "Setuid/setgid files", "evidence": [{"path": "/usr/bin/su", "layer": "sha256:aa", "layer_index": 0, "field": null, "detail": "setuid"}], "fix": "[files] strip_setuid = true (setuid_allow lists the ones to keep)", "cis": "4.8", "dockle": "CIS-DI-0008"})
    );
    let t = format::text(&f, &img, Level::Fatal);
    assert!(t.contains("WARN  HARDEN-FILE-SETUID: Setuid/setgid files [CIS 4.8, Dockle CIS-DI-0008]"), "{t}");
    assert!(t.contains("  /usr/bin/su  setuid  (layer sha256:aa)"), "{t}");
    assert!(t.contains("1 finding: 0 fatal, 1 warn, 0 info (nothing at or above --fail-on fatal)"), "{t}");
}

fn sarif_findings(path: &str, layer: &str) -> Vec<Finding> {
    vec![
        Finding::new(
            CheckId::FileSetuid,
            vec![Evidence {
                path: Some(path.into()),
                layer: Some(layer.into()),
                layer_index: Some(0),
                detail: Some("setuid".into()),
                ..Default::default()
            }],
        ),
        Finding::new(CheckId::UserRoot, vec![Evidence::field("config.User", "\"0:0\"")]),
    ]
}

#[test]
fn sarif_is_2_1_0_shaped() {
    let f = sarif_findings("/usr/bin/a b", "sha256:aa");
    let m = format!("sha256:{}", "d".repeat(64));
    let img = super::ImageInfo::new(
        format!("registry.example/team/app:1.4@{m}"),
        m.clone(),
        &json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
    );
    let s = sarif::sarif(&f, &img);
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), CHECKS.len());
    let r0 = &run["results"][0];
    assert_eq!(run["tool"]["driver"]["rules"][r0["ruleIndex"].as_u64().unwrap() as usize]["id"], "HARDEN-FILE-SETUID");
    assert_eq!(r0["level"], "warning");
    assert_eq!(r0["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "usr/bin/a%20b");
    assert_eq!(r0["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"], "ROOTFS");
    assert_eq!(r0["locations"][0]["physicalLocation"]["region"]["startLine"], 1);
    // A config finding: the image's config as the artifact, at line 1, and the field.
    let r1 = &run["results"][1];
    let loc = &r1["locations"][0];
    assert_eq!(loc["physicalLocation"]["artifactLocation"], json!({"uri": "config.json", "uriBaseId": "IMAGE"}));
    assert_eq!(loc["physicalLocation"]["region"]["startLine"], 1);
    assert_eq!(loc["logicalLocations"][0]["fullyQualifiedName"], "config.User");
    // Tag and digest left out of the category, the platform in it, the digest as the run's id.
    assert_eq!(run["automationDetails"]["id"], format!("harden/registry.example/team/app/linux/arm64/v8/{m}"));
    assert_eq!(run["properties"]["platform"], "linux/arm64/v8");
}

/// What GitHub code scanning needs of each rule and result, for every check.
#[test]
fn sarif_rules_and_results_have_what_github_requires() {
    let s = sarif::sarif(
        &sarif_findings("/usr/bin/su", "sha256:aa"),
        &super::ImageInfo::new("oci:/x:app".into(), "sha256:m".into(), &json!({})),
    );
    let run = &s["runs"][0];
    for (i, r) in run["tool"]["driver"]["rules"].as_array().unwrap().iter().enumerate() {
        let c = &CHECKS[i];
        assert_eq!(r["id"], c.id.as_str());
        for k in ["shortDescription", "fullDescription", "help"] {
            assert!(!r[k]["text"].as_str().unwrap_or("").is_empty(), "{} lacks {k}", c.id);
        }
        assert_ne!(r["fullDescription"]["text"], r["shortDescription"]["text"]);
        assert!(r["help"]["text"].as_str().unwrap().contains(c.fix), "{}", c.id);
        let sev: f64 = r["properties"]["security-severity"].as_str().unwrap().parse().unwrap();
        assert!((0.1..=10.0).contains(&sev), "{}", c.id);
        let want = match c.level {
            Level::Fatal => 9.0,
            Level::Warn => 5.0,
            Level::Info => 2.0,
        };
        assert_eq!(sev, want, "{}", c.id);
        let tags: Vec<&str> = r["properties"]["tags"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(tags.contains(&"security"), "{}", c.id);
        assert!(r["name"].as_str().unwrap().chars().all(|ch| ch.is_ascii_alphanumeric()), "{}", r["name"]);
    }
    assert_eq!(run["tool"]["driver"]["rules"][CheckId::FileSetuid as usize]["name"], "FileSetuid");
    for r in run["results"].as_array().unwrap() {
        assert!(r["locations"][0]["physicalLocation"]["region"]["startLine"].as_u64() == Some(1), "{r}");
        assert!(r["partialFingerprints"][sarif::FINGERPRINT_KEY].as_str().is_some_and(|h| h.len() == 32), "{r}");
    }
    // A layout keeps its tag (it names the image there); without a platform it says so.
    assert_eq!(run["automationDetails"]["id"], "harden/oci:/x:app/unknown/sha256:m");
}

/// The same finding in a rebuilt image (another layer digest, another manifest) keeps its
/// fingerprint; another path or another rule does not.
#[test]
fn sarif_fingerprints_are_stable_across_runs() {
    let fp = |f: Vec<Finding>, digest: &str| -> Vec<String> {
        let s = sarif::sarif(&f, &super::ImageInfo::new("registry.example/app:1".into(), digest.into(), &json!({})));
        s["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["partialFingerprints"][sarif::FINGERPRINT_KEY].as_str().unwrap().to_string())
            .collect()
    };
    let a = fp(sarif_findings("/usr/bin/su", "sha256:aa"), "sha256:m1");
    let b = fp(sarif_findings("/usr/bin/su", "sha256:bb"), "sha256:m2");
    assert_eq!(a, b);
    let c = fp(sarif_findings("/usr/bin/sudo", "sha256:aa"), "sha256:m1");
    assert_ne!(a[0], c[0]);
    assert_eq!(a[1], c[1]);
    assert_ne!(a[0], a[1]);
}

/// An index: one run per image, each with its own automationDetails category.
#[test]
fn sarif_of_an_index_has_one_run_per_platform() {
    let doc = |arch: &str, d: &str| {
        let img = super::ImageInfo::new(
            format!("registry.example/app:1@{d}"),
            d.into(),
            &json!({"os": "linux", "architecture": arch}),
        );
        format::render(format::Format::Sarif, &sarif_findings("/usr/bin/su", "sha256:aa"), &img, Level::Fatal)
    };
    let (m1, m2) = (format!("sha256:{}", "1".repeat(64)), format!("sha256:{}", "2".repeat(64)));
    let all = format::combine(format::Format::Sarif, vec![doc("amd64", &m1), doc("arm64", &m2)]);
    let v: Value = serde_json::from_str(&all).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let cats: Vec<&str> = runs.iter().map(|r| r["automationDetails"]["id"].as_str().unwrap()).collect();
    assert_eq!(
        cats,
        [
            format!("harden/registry.example/app/linux/amd64/{m1}"),
            format!("harden/registry.example/app/linux/arm64/{m2}")
        ]
    );
}

/// docs/checks.md lists every check with its level, CIS and Dockle IDs.
#[test]
fn docs_table_matches_checks() {
    let doc = include_str!("../../docs/checks.md");
    for c in CHECKS {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", c.id)))
            .unwrap_or_else(|| panic!("docs/checks.md has no row for {}", c.id));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], c.level.as_str(), "{row}");
        assert_eq!(cells[4], c.cis.unwrap_or("—"), "{row}");
        assert_eq!(cells[5], c.dockle.unwrap_or("—"), "{row}");
    }
}

#[test]
fn a_package_database_that_lies_is_reported_and_not_after_a_rebuild() {
    let status = b"Package: sudo\nStatus: install ok installed\nVersion: 1\n\nPackage: tzdata\nVersion: 2\n\n";
    let fs = FinalFs::build(vec![layer(vec![
        file("var/lib/dpkg/status", 0o644, status),
        file("var/lib/dpkg/info/sudo.list", 0o644, b"/.\n/usr\n/usr/bin\n/usr/bin/sudo\n"),
        file("var/lib/dpkg/info/tzdata.list", 0o644, b"/usr\n/usr/share/zoneinfo/UTC\n/usr/share/zoneinfo/CET\n"),
        file("usr/share/zoneinfo/UTC", 0o644, b"TZ"),
        dir("usr/bin"),
    ])]);
    let f = audit(&fs, &quiet_config(), &AuditContext::default());
    let stale = find(&f, "HARDEN-PACKAGE-DB-STALE").expect("the database lies");
    let details: Vec<&str> = stale.evidence.iter().filter_map(|e| e.detail.as_deref()).collect();
    assert_eq!(
        details,
        [
            "package sudo is listed, but none of its 1 files is in the image",
            "package tzdata lists 1 files the image does not have (e.g. /usr/share/zoneinfo/CET)"
        ]
    );
    assert_eq!(stale.evidence[0].path.as_deref(), Some("/var/lib/dpkg/status"));
    // A database that tells the truth: no finding.
    let honest = FinalFs::build(vec![layer(vec![
        file("var/lib/dpkg/status", 0o644, b"Package: tzdata\nVersion: 2\n\n"),
        file("var/lib/dpkg/info/tzdata.list", 0o644, b"/usr\n/usr/share/zoneinfo/UTC\n"),
        file("usr/share/zoneinfo/UTC", 0o644, b"TZ"),
    ])]);
    assert!(find(&audit(&honest, &quiet_config(), &AuditContext::default()), "HARDEN-PACKAGE-DB-STALE").is_none());
    // The predicted result of a rebuild removing sudo's binary sees the edited database.
    let fs = FinalFs::build(vec![layer(vec![
        file("var/lib/dpkg/status", 0o644, b"Package: sudo\nVersion: 1\n\n"),
        file("var/lib/dpkg/info/sudo.list", 0o644, b"/usr/bin/sudo\n"),
        file("usr/bin/sudo", 0o755, b"ELF"),
    ])]);
    let profile = crate::profile::load(&["strict".into()]).unwrap();
    let plan = crate::plan::plan(&fs, &profile);
    let after = after_view(&fs, &plan, None);
    assert!(find(&audit(&after, &quiet_config(), &AuditContext::default()), "HARDEN-PACKAGE-DB-STALE").is_none());
}

#[test]
fn an_rpm_database_listing_gone_files_is_stale_naming_packages() {
    use crate::pkgdb::rpm::{bdb::tests::build, header::tests::blob};
    let db = build(&[blob("bash", None, &["/usr/bin/bash"]), blob("sudo", None, &["/usr/bin/sudo", "/etc/sudoers"])]);
    let fs = FinalFs::build(vec![layer(vec![
        file("var/lib/rpm/Packages", 0o644, &db),
        dir("usr"),
        dir("usr/bin"),
        file("usr/bin/bash", 0o755, b"x"),
        file("etc/sudoers", 0o440, b"x"),
    ])]);
    let f = audit(&fs, &quiet_config(), &AuditContext::default());
    let stale = find(&f, "HARDEN-PACKAGE-DB-STALE").expect("the rpm database lists /usr/bin/sudo");
    let details: Vec<&str> = stale.evidence.iter().filter_map(|e| e.detail.as_deref()).collect();
    assert_eq!(details, ["package sudo lists 1 files the image does not have (e.g. /usr/bin/sudo)"]);
    assert_eq!(stale.evidence[0].path.as_deref(), Some("/var/lib/rpm/Packages"));
    // One harden cannot read says so, naming it.
    let fs = FinalFs::build(vec![layer(vec![file("var/lib/rpm/Packages", 0o644, &[7u8; 600])])]);
    let f = audit(&fs, &quiet_config(), &AuditContext::default());
    let stale = find(&f, "HARDEN-PACKAGE-DB-STALE").expect("an unreadable database is reported");
    let d = stale.evidence[0].detail.as_deref().unwrap();
    assert!(d.starts_with("cannot read the rpm database: /var/lib/rpm/Packages: not a Berkeley DB hash"), "{d}");
}
