//! Other projects' tar corpora: every archive of Go's `archive/tar/testdata` (Debian package
//! `golang-1.19-src`) and of CPython's tarfile tests (`libpython3.11-testsuite`), each as the
//! single layer of an OCI layout image, through `harden rebuild -p passthrough`.
//!
//! The rule: Go's `archive/tar` (integration/golist; the reader containerd unpacks layers with)
//! decides. An archive Go reads without error is rebuilt (exit 0) and its output layer lists the
//! same (names, types, sizes) with bsdtar or GNU tar, whichever lists the input; an archive Go
//! refuses is refused (exit 1, one line naming the layer), even where GNU tar or bsdtar list it
//! (a PAX path with a NUL byte). Never a panic (exit 101), a hang or a signal. `passthrough`
//! leaves such a layer as it is, so each listed archive is also rebuilt with a profile removing
//! its first plainly named file: the layer is then rewritten (every other entry copied through
//! the filter) and must list the same without that file. Entry for entry framing against Go is
//! integration/tarframing.rs.
//! Compressed corpus files are decompressed with the system tools first (harden reads plain,
//! gzip and zstd tar; bzip2 and xz layers are out of its scope, not the archives inside them).

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GO_TESTDATA: &str = "/usr/share/go-1.19/src/archive/tar/testdata";
const CPYTHON_TEST: &str = "/usr/lib/python3.11/test";
/// Per command; the corpus files are at most a few KiB.
const TIMEOUT_SECS: &str = "60";
/// Archives Go reads that harden refuses on purpose (exit 1, one line naming the layer): none
/// now; Go's `pax-bad-hdr-large.tar` (a 1 MiB path), which GNU tar lists, Go refuses too.
const REFUSED_ON_PURPOSE: &[(&str, &str)] = &[];

/// The corpus: (display name, plain tar bytes).
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (dir, pkg) in [(GO_TESTDATA, "golang-1.19-src"), (CPYTHON_TEST, "libpython3.11-testsuite")] {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
            panic!("{dir}: {e}; the corpus test needs Debian package `{pkg}` (run `make setup`, integration/setup.sh)")
        });
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(".tar")))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{dir} holds no tar archive (package `{pkg}` changed?)");
        for f in files {
            let name = format!("{}/{}", if dir == GO_TESTDATA { "go" } else { "cpython" }, file_name(&f));
            let bytes = match f.extension().and_then(|e| e.to_str()) {
                Some("tar") => std::fs::read(&f).unwrap(),
                Some("bz2") => decompress("bzip2", &f),
                Some("xz") => decompress("xz", &f),
                Some("gz") => decompress("gzip", &f),
                _ => continue,
            };
            out.push((name, bytes));
        }
    }
    out
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn decompress(tool: &str, f: &Path) -> Vec<u8> {
    run_ok(Command::new(require_tool(tool)).arg("-dc").arg(f)).stdout
}

fn timed(tool: &Path) -> Command {
    let mut c = Command::new(require_tool("timeout"));
    c.args(["-s", "KILL", TIMEOUT_SECS]).arg(tool);
    c
}

/// (type, size, name) of each entry as `tool -tvf` lists it, or None when it fails.
fn listing(tool: &str, tar: &Path) -> Option<Vec<(char, String, String)>> {
    let out = run_with_timeout(timed(&require_tool(tool)).arg("-tvf").arg(tar));
    if !out.status.success() {
        return None;
    }
    Some(stdout_str(&out).lines().map(parse_list_line).collect())
}

/// `-rw-r--r-- 0 user group 5 Jan  1  2020 name` (bsdtar) or
/// `-rw-r--r-- user/group 5 2020-01-01 00:00 name` (GNU tar): type, size, name. Names are compared
/// as the container sees them (no leading `./` or `/`, no trailing `/`); sizes of regular files
/// only (harden writes 0 for a directory or link that declares a size it carries no data for).
fn parse_list_line(line: &str) -> (char, String, String) {
    let f: Vec<&str> = line.split_whitespace().collect();
    let kind = line.chars().next().unwrap_or('?');
    let (size, name) = if f.get(1).is_some_and(|s| s.contains('/')) {
        (f.get(2).copied().unwrap_or_default(), f.get(5..).map(|n| n.join(" ")).unwrap_or_default())
    } else {
        (f.get(4).copied().unwrap_or_default(), f.get(8..).map(|n| n.join(" ")).unwrap_or_default())
    };
    let name = name.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string();
    let size = if kind == '-' { size.to_string() } else { String::new() };
    (kind, size, name)
}

/// An OCI layout at `dir` whose image (tag `t`) has `tar` as its single, uncompressed layer.
pub fn layout_with_layer(dir: &Path, tar: &[u8]) -> String {
    oci_layout_of_layers(dir, &[tar], serde_json::json!({})).remove(0)
}

fn run_harden(args: &[&str]) -> Output {
    let mut c = timed(&harden_bin());
    c.args(args).current_dir(repo_root()).env("DOCKER_CONFIG", tempdir("corpus-docker").path());
    run_with_timeout(&mut c)
}

/// Rebuild `src` removing its first plainly named regular file: the layer is rewritten, and
/// must list as `want` without that file, its hardlinks turned into regular files.
/// `go_names`: the names as Go reads them (normalised); the victim is one Go and the tool both
/// name so (Go's `invalid-go17.tar`: Go joins a pre-Go-1.8 prefix, the tools do not).
fn rewritten(
    case: &Path,
    src: &str,
    tool: &str,
    want: &[(char, String, String)],
    go_names: &[String],
) -> Result<String, String> {
    let plain = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    let Some((_, _, victim)) = want.iter().find(|(k, _, n)| *k == '-' && plain(n) && go_names.contains(n)) else {
        return Ok("no plainly named file to remove".into());
    };
    let profile = case.join("probe.toml");
    let text = format!("name = \"probe\"\nextends = \"passthrough\"\n[files]\nremove = [\"/{victim}\"]\n");
    std::fs::write(&profile, text).unwrap();
    let dst = format!("oci:{}:t", case.join("rw").display());
    let out = run_harden(&["rebuild", "-q", "--no-cache", "-p", &profile.to_string_lossy(), src, &dst]);
    if out.status.code() != Some(0) {
        return Err(format!("removing /{victim}: harden exits {:?}: {}", out.status.code(), stderr_str(&out).trim()));
    }
    let layout = case.join("rw");
    let manifest = read_json(&oci_blob_path(&layout, &oci_manifest_digest(&layout, "t")));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap_or_default().to_string();
    let codec =
        if manifest["layers"][0]["mediaType"].as_str().unwrap_or_default().ends_with("gzip") { "gz" } else { "tar" };
    let out_tar = case.join(format!("rw.{codec}"));
    std::fs::write(&out_tar, oci_read_blob_verified(&layout, &layer)).unwrap();
    // The probe's own rule follows no copies (a user rule's default, issue 20): the removed
    // file's hardlinked names stay, each now a regular file holding its data.
    let link = format!(" link to {victim}");
    let size = want.iter().find(|(_, _, n)| n == victim).map(|(_, s, _)| s.clone()).unwrap_or_default();
    // Compared as sorted lists: the promoted name may take the removed file's place in the stream.
    let mut expect: Vec<_> = want
        .iter()
        .filter(|(_, _, n)| n != victim)
        .map(|(k, s, n)| match n.strip_suffix(&link) {
            Some(name) => ('-', size.clone(), name.to_string()),
            None => (*k, s.clone(), n.clone()),
        })
        .collect();
    expect.sort();
    match listing(tool, &out_tar).map(|mut got| {
        got.sort();
        got
    }) {
        Some(got) if got == expect => Ok(format!("rewritten without /{victim}, the rest the same")),
        Some(got) => Err(format!(
            "rewritten without /{victim}: only in the output {:?}, only in the input {:?}",
            got.iter().filter(|e| !expect.contains(e)).collect::<Vec<_>>(),
            expect.iter().filter(|e| !got.contains(e)).collect::<Vec<_>>()
        )),
        None => Err(format!("{tool} cannot list the layer rewritten without /{victim}")),
    }
}

#[test]
fn corpus_archives_of_go_and_cpython() {
    let tmp = tempdir("corpus");
    let mut rows = Vec::new();
    let mut broken = Vec::new();
    for (i, (name, tar)) in corpus().into_iter().enumerate() {
        let case = tmp.path().join(i.to_string());
        std::fs::create_dir_all(&case).unwrap();
        let plain = case.join("layer.tar");
        std::fs::write(&plain, &tar).unwrap();
        let reference =
            listing("bsdtar", &plain).map(|l| ("bsdtar", l)).or_else(|| listing("tar", &plain).map(|l| ("tar", l)));
        let go = crate::tarframing::go_list(&plain);
        let go_reads = go["error"].is_null();
        let go_names: Vec<String> = go["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str())
            .map(|n| n.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string())
            .collect();
        let layer = layout_with_layer(&case.join("in"), &tar);
        let src = format!("oci:{}:t", case.join("in").display());
        let dst = format!("oci:{}:t", case.join("out").display());
        let out = run_harden(&["rebuild", "-q", "--no-cache", "-p", "passthrough", &src, &dst]);
        let code = out.status.code();
        let err = stderr_str(&out);
        let first_err = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
        let one_line = code == Some(1) && err.lines().count() == 1 && err.contains(&layer);
        let verdict = match (&reference, code) {
            (_, None) => Err(format!("killed by a signal or the {TIMEOUT_SECS} s timeout")),
            (_, Some(101)) => Err(format!("panicked: {first_err}")),
            (_, Some(0)) if !go_reads => Err("Go's archive/tar refuses it, harden rebuilt it".to_string()),
            (Some((tool, want)), Some(0)) => {
                let manifest =
                    read_json(&oci_blob_path(&case.join("out"), &oci_manifest_digest(&case.join("out"), "t")));
                let out_layer = manifest["layers"][0]["digest"].as_str().unwrap_or_default().to_string();
                let out_tar = case.join("out.tar");
                std::fs::write(&out_tar, oci_read_blob_verified(&case.join("out"), &out_layer)).unwrap();
                match listing(tool, &out_tar) {
                    Some(got) if &got == want => match rewritten(&case, &src, tool, want, &go_names) {
                        Ok(what) => Ok(format!("rebuilt, {tool} lists the same {} entries; {what}", got.len())),
                        Err(why) => Err(why),
                    },
                    Some(got) => {
                        let only_out: Vec<_> = got.iter().filter(|e| !want.contains(e)).collect();
                        let only_in: Vec<_> = want.iter().filter(|e| !got.contains(e)).collect();
                        Err(format!("{tool} lists the output differently: only in the output {only_out:?}, only in the input {only_in:?}"))
                    }
                    None => Err(format!("{tool} cannot list the output layer")),
                }
            }
            (None, Some(0)) => Ok("rebuilt (Go reads it; no other tool lists it to compare)".to_string()),
            (_, Some(1)) if one_line && !go_reads => Ok(format!("refused, as Go refuses it: {first_err}")),
            (_, Some(c)) => match REFUSED_ON_PURPOSE.iter().find(|(n, _)| *n == name) {
                Some((_, why)) if one_line => Ok(format!("refused on purpose ({why}): {first_err}")),
                _ => Err(format!(
                    "Go {} it, harden exits {c} ({}): {first_err}",
                    if go_reads { "reads" } else { "refuses" },
                    if one_line { "one line naming the layer" } else { "not one line naming the layer" }
                )),
            },
        };
        let listed = reference.as_ref().map_or("neither", |(t, _)| *t);
        match verdict {
            Ok(what) => rows.push(format!("ok    {name:<40} {listed:<8} {what}")),
            Err(why) => {
                rows.push(format!("FAIL  {name:<40} {listed:<8} {why}"));
                broken.push(format!("{name}: {why}"));
            }
        }
    }
    println!("corpus: archive / listed by / result\n{}", rows.join("\n"));
    assert!(broken.is_empty(), "{} archives broke the rule:\n{}", broken.len(), broken.join("\n"));
}
