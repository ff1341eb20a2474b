//! `harden batch`: one line per job, a shared rewrite cache (a base layer common to two images
//! is rewritten once; a rerun recompresses nothing and uploads nothing), stable shards, and
//! exit codes that say whether anything was refused or failed.

use crate::common::*;
use serde_json::Value;

#[test]
fn batch_shares_rewrites_shards_and_reruns_for_free() {
    let reg = Registry::start(false);
    let tmp = tempdir("batch");
    for (fx, tag, name) in
        [("app", "app", "app:1"), ("app", "app-shellcmd", "shell:1"), ("debian", "debian", "debian:1")]
    {
        let f = fixture(fx);
        skopeo_copy(&format!("oci:{}:{tag}", f.layout.display()), &reg.docker(&format!("src/{name}")));
    }
    let jobs = tmp.path().join("jobs.toml");
    std::fs::write(
        &jobs,
        format!(
            "[defaults]\nprofiles = [\"baseline\"]\n\n\
             [[job]]\nsource = \"{a}\"\ndestination = \"{a2}\"\n\n\
             [[job]]\nsource = \"{s}\"\ndestination = \"{s2}\"\n\n\
             [[job]]\nsource = \"{d}\"\ndestination = \"{d2}\"\n",
            a = reg.image("src/app:1"),
            a2 = reg.image("dst/app:1"),
            s = reg.image("src/shell:1"),
            s2 = reg.image("dst/shell:1"),
            d = reg.image("src/debian:1"),
            d2 = reg.image("dst/debian:1"),
        ),
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let report = tmp.path().join("batch.json");
    let run = |extra: &[&str]| {
        let mut args = vec!["batch", jobs.to_str().unwrap(), "--jobs", "1", "--cache-dir", cache.to_str().unwrap()];
        args.extend_from_slice(extra);
        harden(&args)
    };
    let out = run(&["--report", report.to_str().unwrap()]);
    assert!(out.status.success(), "{}", dump(&out));
    let lines: Vec<String> = stdout_str(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{}", dump(&out));
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{}", dump(&out));
    // app and shell share their base layer: rewritten for one, reused by the other.
    let r: Value = read_json(&report);
    let base_actions: Vec<String> = r["jobs"].as_array().unwrap()[..2]
        .iter()
        .map(|j| j["report"]["layers"][0]["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(base_actions.iter().filter(|a| *a == "rewritten").count(), 1, "{base_actions:?}");
    // Each result is a real image skopeo accepts.
    for l in &lines {
        let pinned = l.split_whitespace().last().unwrap();
        skopeo_inspect(pinned, &[]);
    }

    // A rerun finds every result already at its destination: nothing planned, recompressed
    // or uploaded, the same digests, and each job's report carries the report that made it.
    let again = run(&["--report", report.to_str().unwrap()]);
    assert!(again.status.success(), "{}", dump(&again));
    assert_eq!(stdout_str(&again).lines().collect::<Vec<_>>(), lines.iter().map(String::as_str).collect::<Vec<_>>());
    let r: Value = read_json(&report);
    for j in r["jobs"].as_array().unwrap() {
        assert!(j["report"]["layers"].is_null(), "rerun planned again: {j}");
        let made_by = &j["report"]["reused"]["made_by"];
        assert_eq!(made_by["result"]["digest"], j["report"]["result"]["digest"], "{j}");
        assert!(made_by["layers"].is_array(), "{j}");
    }
    // Without result records (as on another machine), into new destinations: rebuilt, and
    // nothing is recompressed (the rewrite cache).
    std::fs::remove_dir_all(cache.join("results")).unwrap();
    let moved = std::fs::read_to_string(&jobs).unwrap().replace("/dst/", "/dst2/");
    std::fs::write(&jobs, moved).unwrap();
    let third = run(&["--report", report.to_str().unwrap()]);
    assert!(third.status.success(), "{}", dump(&third));
    let r: Value = read_json(&report);
    for j in r["jobs"].as_array().unwrap() {
        assert!(j["report"]["reused"].is_null(), "nothing to reuse at a new destination: {j}");
        for l in j["report"]["layers"].as_array().unwrap() {
            assert_ne!(l["action"], "rewritten", "rerun recompressed: {l}");
        }
    }

    // Two shards split the list: every job in exactly one, none twice.
    let mut seen = Vec::new();
    for s in ["0/2", "1/2"] {
        let o = run(&["--shard", s]);
        assert!(o.status.success(), "{}", dump(&o));
        seen.extend(stdout_str(&o).lines().map(|l| l.split_whitespace().nth(1).unwrap().to_string()));
    }
    seen.sort();
    let mut want: Vec<String> = lines.iter().map(|l| l.split_whitespace().nth(1).unwrap().to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn batch_reports_refusals_and_stops_without_keep_going() {
    let reg = Registry::start(false);
    let tmp = tempdir("batch-refused");
    let f = fixture("app");
    skopeo_copy(&format!("oci:{}:app-shellcmd", f.layout.display()), &reg.docker("src/shell:1"));
    skopeo_copy(&format!("oci:{}:app", f.layout.display()), &reg.docker("src/app:1"));
    let jobs = tmp.path().join("jobs.toml");
    std::fs::write(
        &jobs,
        format!(
            "[defaults]\nprofiles = [\"strict\"]\n\n[[job]]\nsource = \"{}\"\ndestination = \"{}\"\n\n[[job]]\nsource = \"{}\"\ndestination = \"{}\"\n",
            reg.image("src/shell:1"),
            reg.image("dst/shell:1"),
            reg.image("src/app:1"),
            reg.image("dst/app:1")
        ),
    )
    .unwrap();
    let out = harden(&["batch", jobs.to_str().unwrap(), "--jobs", "1", "--no-cache", "--keep-going"]);
    assert_eq!(out.status.code(), Some(3), "a refusal only is a policy result:\n{}", dump(&out));
    let stdout = stdout_str(&out);
    assert!(stdout.lines().any(|l| l.starts_with("failed ") && l.contains("/bin/sh")), "{}", dump(&out));
    assert!(stdout.lines().any(|l| l.starts_with("ok ")), "--keep-going runs the second job:\n{}", dump(&out));
    let stop = harden(&["batch", jobs.to_str().unwrap(), "--jobs", "1", "--no-cache"]);
    assert_eq!(stop.status.code(), Some(3), "{}", dump(&stop));
    assert!(stdout_str(&stop).lines().any(|l| l.starts_with("skipped ")), "{}", dump(&stop));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[[job]]\nsource = 1\n").unwrap();
    let o = harden(&["batch", bad.to_str().unwrap()]);
    expect_exit(&o, 2);
    assert!(stderr_str(&o).contains("bad.toml:2:"), "{}", dump(&o));
}
