//! Hostile inputs, as an attacker would craft them: small files that used to cost gigabytes of
//! memory or disk, minutes, a hang, or a bypassed check. Each runs the real binary with its own
//! `TMPDIR` and must end with exit 1 (or a clean result) within 256 MiB of peak RSS and a bound
//! on the bytes it reads and writes (the kernel's count, `/proc/PID/io`), leave nothing in
//! `TMPDIR` and write nothing beside its inputs. Time is not asserted (a loaded machine would
//! make it flaky): a run still going after the watchdog's 60 s is killed and fails as hung; the
//! work a bomb costs inside the process is bounded by the reading limits (unit
//! `layer::hostile_tests`), and each run's CPU-seconds are printed for the record.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MAX_RSS_KIB: u64 = 256 << 10;
/// Bytes a run may move through read(2)/write(2) beyond reading its inputs once: the binary's
/// start-up reads (its own file for the cache's build id, certificates, `/proc`) and the small
/// documents it writes. A run that spooled
/// or re-read one of the 600 MiB documents would be over it many times.
const IO_SLACK: u64 = 32 << 20;
/// A run still going after this is killed and fails the test as hung (a liveness watchdog, not a
/// speed bound).
const WATCHDOG: Duration = Duration::from_secs(60);
/// What the hostile documents weigh uncompressed: well over the RSS bound, so reading one whole
/// would show.
const BIG: u64 = 600 << 20;

/// One bounded run's outcome.
struct Run {
    code: Option<i32>,
    rss_kib: u64,
    stdout: String,
    stderr: String,
}

/// The bytes of the files `args` names (a `oci:`/`*-archive:` path, or a layout directory).
fn input_bytes(args: &[&str]) -> u64 {
    let size = |p: &Path| -> u64 {
        if p.is_dir() {
            listing(p)
                .iter()
                .filter_map(|n| std::fs::metadata(p.join(n)).ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        } else {
            std::fs::metadata(p).map_or(0, |m| m.len())
        }
    };
    // `docker-archive:FILE`, `oci-archive:FILE`, or `oci:DIR:TAG` (the layout, not its parent).
    let named = |rest: &str| -> Option<PathBuf> {
        let whole = Path::new(rest);
        if whole.exists() {
            return Some(whole.to_path_buf());
        }
        let (dir, _tag) = rest.rsplit_once(':')?;
        Path::new(dir).exists().then(|| PathBuf::from(dir))
    };
    args.iter().filter_map(|a| a.split_once(':')).filter_map(|(_, rest)| named(rest)).map(|p| size(&p)).sum()
}

/// Run harden with `args` under the watchdog, `TMPDIR` a fresh directory of `dir` (checked
/// empty after), its cache in `dir` too; check the bounds.
fn bounded(dir: &Path, args: &[&str]) -> Run {
    let tmp = dir.join("tmpdir");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let before = listing(dir);
    let inputs = input_bytes(args);
    let (Output { status, stdout, stderr }, u) = run_measured(
        Command::new(harden_bin())
            .args(args)
            .env("TMPDIR", &tmp)
            .env("XDG_CACHE_HOME", dir.join("xdg"))
            .env("NO_COLOR", "1")
            .current_dir(dir),
        WATCHDOG,
    );
    let run = Run {
        code: status.code(),
        rss_kib: u.rss_kib,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    let what = format!("harden {}", args.join(" "));
    let (rchar, wchar) = u.rchar.zip(u.wchar).unwrap_or_else(|| panic!("{what}: /proc/PID/io gave no rchar/wchar"));
    eprintln!(
        "[hostile] {what}: exit {:?}, {} KiB peak, read {} KiB, wrote {} KiB (inputs {} KiB), {:.2} CPU-s",
        run.code,
        run.rss_kib,
        rchar >> 10,
        wchar >> 10,
        inputs >> 10,
        u.cpu_secs
    );
    assert!(run.rss_kib < MAX_RSS_KIB, "{what}: peak RSS {} KiB\n{}", run.rss_kib, run.stderr);
    assert!(wchar < IO_SLACK, "{what}: wrote {wchar} bytes\n{}", run.stderr);
    assert!(rchar < 2 * inputs + IO_SLACK, "{what}: read {} bytes of {inputs} bytes of input\n{}", rchar, run.stderr);
    assert!(run.code.is_some_and(|c| c < 4), "{what}: ended by {status:?} (killed? crashed?)\n{}", run.stderr);
    assert_eq!(listing(&tmp), Vec::<String>::new(), "{what}: left in TMPDIR");
    let mut after = listing(dir);
    // The run's own places: TMPDIR, its cache, its result (`out`) and a given cache (`shared`).
    let own = ["tmpdir", "xdg", "out", "shared"];
    after.retain(|n| !before.contains(n) && !own.iter().any(|o| n.starts_with(o)));
    assert_eq!(after, Vec::<String>::new(), "{what}: wrote beside its inputs");
    run
}

/// Every path under `dir`, relative.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn expect_error(run: &Run, needle: &str) {
    assert_eq!(run.code, Some(1), "expected exit 1:\n{}", run.stderr);
    assert!(run.stderr.contains(needle), "expected `{needle}` in:\n{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "one line:\n{}", run.stderr);
}

// ------------------------------------------------------------------ building inputs

/// An uncompressed tar of `files` (regular files, mode 0755 for `bin/`).
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(if name.starts_with("bin/") { 0o755 } else { 0o644 });
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn hex(data: &[u8]) -> String {
    sha256_hex(data)
}

/// A one-layer image: (config bytes, layer tar, layer blob gzip).
struct Image {
    config: Vec<u8>,
    tar: Vec<u8>,
    blob: Vec<u8>,
}

fn image(files: &[(&str, &[u8])]) -> Image {
    let tar = tar_of(files);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/app"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex(&tar))]},
    }))
    .unwrap();
    let blob = gzip(&tar);
    Image { config, tar, blob }
}

fn small_image() -> Image {
    image(&[("bin/app", b"a program\n"), ("etc/hostname", b"x\n")])
}

/// An OCI layout of `img` in `dir`; `edit` may change the manifest first. Returns the
/// manifest's, config's and layer's blob paths.
fn layout(dir: &Path, img: &Image, edit: impl FnOnce(&mut Value)) -> [PathBuf; 3] {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |b: &[u8]| {
        let p = blobs.join(hex(b));
        std::fs::write(&p, b).unwrap();
        p
    };
    let (cp, lp) = (put(&img.config), put(&img.blob));
    let mut m = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", hex(&img.config)), "size": img.config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": format!("sha256:{}", hex(&img.blob)), "size": img.blob.len()}],
    });
    edit(&mut m);
    let mb = serde_json::to_vec(&m).unwrap();
    let mp = put(&mb);
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", hex(&mb)), "size": mb.len(),
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    [mp, cp, lp]
}

/// A compressed tar stream: none, gzip or zstd.
enum Zip {
    Plain,
    Gzip,
    Zstd,
}

fn tar_writer(path: &Path, zip: &Zip) -> tar::Builder<Box<dyn Write>> {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let w: Box<dyn Write> = match zip {
        Zip::Plain => Box::new(f),
        Zip::Gzip => Box::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast())),
        Zip::Zstd => Box::new(zstd::Encoder::new(f, 1).unwrap().auto_finish()),
    };
    tar::Builder::new(w)
}

fn append(b: &mut tar::Builder<Box<dyn Write>>, name: &str, size: u64, data: impl Read) {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
}

/// `BIG` bytes of spaces (a JSON document's whitespace, or any blob): compresses to almost nothing.
fn big() -> impl Read {
    std::io::repeat(b' ').take(BIG)
}

/// An oci-archive of a small image plus `extra` entries (name, size), each `size` spaces;
/// `index_json` replaces the layout's own when given a size.
fn oci_archive(path: &Path, zip: Zip, big_index: bool, extra: &[&str]) {
    let src = path.with_extension("src");
    let img = small_image();
    layout(&src, &img, |_| {});
    let mut b = tar_writer(path, &zip);
    append(&mut b, "oci-layout", 30, &br#"{"imageLayoutVersion":"1.0.0"}"#[..]);
    for e in std::fs::read_dir(src.join("blobs/sha256")).unwrap().flatten() {
        let data = std::fs::read(e.path()).unwrap();
        append(&mut b, &format!("blobs/sha256/{}", e.file_name().to_string_lossy()), data.len() as u64, &data[..]);
    }
    for name in extra {
        append(&mut b, name, BIG, big());
    }
    if big_index {
        append(&mut b, "index.json", BIG, big());
    } else {
        let data = std::fs::read(src.join("index.json")).unwrap();
        append(&mut b, "index.json", data.len() as u64, &data[..]);
    }
    b.into_inner().unwrap().flush().unwrap();
    std::fs::remove_dir_all(&src).unwrap();
}

/// A docker-archive of a small image; `big` names which of `manifest.json`, `config` is
/// `BIG` spaces instead, and `extra` entries of `BIG` spaces are added.
fn docker_archive(path: &Path, zip: Zip, big_doc: Option<&str>, extra: &[&str]) {
    let img = small_image();
    let config_name = format!("{}.json", hex(&img.config));
    let layer_name = format!("{}/layer.tar", hex(&img.tar));
    let manifest =
        serde_json::to_vec(&json!([{"Config": config_name, "RepoTags": ["x:1"], "Layers": [layer_name]}])).unwrap();
    let mut b = tar_writer(path, &zip);
    append(&mut b, &layer_name, img.tar.len() as u64, &img.tar[..]);
    for name in extra {
        append(&mut b, name, BIG, big());
    }
    match big_doc {
        Some("config") => append(&mut b, &config_name, BIG, big()),
        _ => append(&mut b, &config_name, img.config.len() as u64, &img.config[..]),
    }
    match big_doc {
        Some("manifest.json") => append(&mut b, "manifest.json", BIG, big()),
        _ => append(&mut b, "manifest.json", manifest.len() as u64, &manifest[..]),
    }
    b.into_inner().unwrap().flush().unwrap();
}

// ------------------------------------------------------------------ 1, 11: layouts

/// `index.json`, a manifest, a config or a layer that is a symlink (to `/dev/zero`, to a secret)
/// or a FIFO: refused before a byte is read (no memory, no hang, nothing of the secret in the
/// error); a config whose size the manifest misstates is refused like a layer's.
#[test]
fn hostile_layout_files_are_regular_files_read_bounded() {
    require_root();
    let tmp = tempdir("hostile-layout");
    let secret = tmp.path().join("shadow");
    std::fs::write(&secret, b"root:$6$secret-hash:19000:0:99999:7:::\n").unwrap();
    let secret_sha = hex(&std::fs::read(&secret).unwrap());
    let cases: [(&str, usize); 4] = [("index.json", 9), ("manifest", 0), ("config", 1), ("layer", 2)];
    for (which, blob) in cases {
        for target in ["/dev/zero", "secret", "fifo"] {
            let dir = tmp.path().join(format!("{which}-{}", target.trim_start_matches("/dev/")));
            let img = small_image();
            let blobs = layout(&dir, &img, |_| {});
            let victim = if blob == 9 { dir.join("index.json") } else { blobs[blob].clone() };
            std::fs::remove_file(&victim).unwrap();
            match target {
                "fifo" => {
                    let c = std::ffi::CString::new(victim.as_os_str().as_encoded_bytes()).unwrap();
                    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
                }
                "secret" => std::os::unix::fs::symlink(&secret, &victim).unwrap(),
                t => std::os::unix::fs::symlink(t, &victim).unwrap(),
            }
            let src = format!("oci:{}:1", dir.display());
            for args in [vec!["check", &src], vec!["sbom", &src]] {
                let run = bounded(&dir, &args);
                let want = if target == "fifo" { "not a regular file" } else { "is a symlink" };
                expect_error(&run, want);
                assert!(!run.stderr.contains(&secret_sha) && !run.stderr.contains("secret-hash"), "{}", run.stderr);
            }
        }
    }
    // 11: a wrong config size in the manifest.
    let dir = tmp.path().join("config-size");
    let img = small_image();
    layout(&dir, &img, |m| m["config"]["size"] = json!(img.config.len() + 1));
    let src = format!("oci:{}:1", dir.display());
    let run = bounded(&dir, &["check", &src]);
    expect_error(&run, "but the manifest says");
}

// ------------------------------------------------------------------ 2, 3: archives

/// A few KiB of archive holding a 600 MiB `index.json`, `manifest.json` or config (each archive
/// kind, each compression): refused from the entry's header, in bounded memory, nothing
/// written. An unreferenced 600 MiB entry is refused by `--max-layer-size`, and in an
/// oci-archive a name no reader uses is not written at all (the image still reads).
#[test]
fn hostile_archives_are_bounded_in_memory_and_disk() {
    require_root();
    let tmp = tempdir("hostile-archives");
    let dir = tmp.path();
    for (zip, ext) in [(Zip::Plain, "tar"), (Zip::Gzip, "tar.gz"), (Zip::Zstd, "tar.zst")] {
        let zname = ext.to_string();
        let p = dir.join(format!("big-index.{ext}"));
        oci_archive(&p, zip, true, &[]);
        assert!(std::fs::metadata(&p).unwrap().len() < 8 << 20 || ext == "tar");
        let run = bounded(dir, &["check", &format!("oci-archive:{}", p.display())]);
        expect_error(&run, "entry `index.json` is 629145600 bytes");
        std::fs::remove_file(&p).unwrap();
        for doc in ["manifest.json", "config"] {
            let zip = match zname.as_str() {
                "tar" => Zip::Plain,
                "tar.gz" => Zip::Gzip,
                _ => Zip::Zstd,
            };
            let p = dir.join(format!("big-{doc}.{ext}"));
            docker_archive(&p, zip, Some(doc), &[]);
            let run = bounded(dir, &["check", &format!("docker-archive:{}", p.display())]);
            expect_error(&run, "bytes, more than the");
            std::fs::remove_file(&p).unwrap();
        }
    }
    // An unreferenced entry within the default limits is no longer kept; over
    // --max-layer-size it is refused before it is written.
    let p = dir.join("junk.tar.zst");
    docker_archive(&p, Zip::Zstd, None, &["junk/layer.tar"]);
    let src = format!("docker-archive:{}", p.display());
    let run = bounded(dir, &["check", &src, "--max-layer-size", "1000000"]);
    expect_error(&run, "entry `junk/layer.tar` is 629145600 bytes, more than the 1000000-byte limit");
    std::fs::remove_file(&p).unwrap();
    let hexname = format!("blobs/sha256/{}", "ab".repeat(32));
    let p = dir.join("junk-oci.tar.zst");
    oci_archive(&p, Zip::Zstd, false, &[&hexname]);
    let src = format!("oci-archive:{}", p.display());
    let run = bounded(dir, &["check", &src, "--max-layer-size", "1000000"]);
    expect_error(&run, "more than the 1000000-byte limit");
    std::fs::remove_file(&p).unwrap();
    // Names an oci-archive reader never uses are skipped, not written: the image reads.
    let p = dir.join("extra-oci.tar.zst");
    oci_archive(&p, Zip::Zstd, false, &["manifest.json", "junk/file"]);
    let run = bounded(dir, &["sbom", &format!("oci-archive:{}", p.display()), "--max-layer-size", "1000000"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("CycloneDX"), "{}", run.stdout);
}

// ------------------------------------------------------------------ 4: signals

/// SIGTERM, SIGHUP and SIGINT during an archive's unpack (read from a FIFO, slowly): the run
/// stops at once, removes its temporary directory and exits 143, 129, 130. A run's first
/// temporary directory sweeps those of dead runs (SIGKILLed), never a live one's.
#[test]
fn hostile_signals_clean_up_and_dead_runs_are_swept() {
    require_root();
    let tmp = tempdir("hostile-signals");
    let dir = tmp.path();
    let tmpdir = dir.join("tmpdir");
    std::fs::create_dir_all(&tmpdir).unwrap();
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129), (libc::SIGINT, 130)] {
        let fifo = dir.join(format!("slow-{sig}.tar"));
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let mut child = Command::new(harden_bin())
            .args(["check", &format!("docker-archive:{}", fifo.display())])
            .env("TMPDIR", &tmpdir)
            .env("XDG_CACHE_HOME", dir.join("xdg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A tar header of a big entry, then its bytes a little at a time.
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || {
                let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else { return };
                let mut h = tar::Header::new_ustar();
                h.set_path("layer.tar").unwrap();
                h.set_size(1 << 30);
                h.set_cksum();
                if f.write_all(h.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![0u8; 64 << 10];
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(30) && f.write_all(&chunk).is_ok() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        // Wait until the run's directory exists (the unpack is under way).
        let start = Instant::now();
        while listing(&tmpdir).iter().all(|n| !n.contains("/raw")) {
            assert!(start.elapsed() < Duration::from_secs(20), "no unpack under way: {:?}", listing(&tmpdir));
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = Instant::now();
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(sent.elapsed() < Duration::from_secs(10), "signal {sig}: still running");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        eprintln!("[hostile] signal {sig}: exit {:?} after {:?}: {}", status.code(), sent.elapsed(), err.trim());
        assert_eq!(status.code(), Some(code), "signal {sig}: {err}");
        assert!(err.contains("interrupted"), "{err}");
        assert_eq!(listing(&tmpdir), Vec::<String>::new(), "signal {sig}: left in TMPDIR");
        writer.join().unwrap();
    }
    // Left by dead runs: a locked-then-killed run's (lock free), one killed before it locked
    // (no lock, its PID gone); kept: a live run's (this test's PID) and an old-style name.
    let mk = |name: &str, lock: bool| {
        let p = tmpdir.join(name);
        std::fs::create_dir_all(p.join("raw")).unwrap();
        std::fs::write(p.join("raw/0"), b"layer").unwrap();
        if lock {
            std::fs::write(p.join(".lock"), b"").unwrap();
        }
        p
    };
    let dead = [mk("harden-4194304-aaaaaa", true), mk("harden-99999999-bbbbbb", false)];
    let live = [mk(&format!("harden-{}-cccccc", std::process::id()), false), mk("harden-Ab12Cd", false)];
    let p = dir.join("ok.tar");
    docker_archive(&p, Zip::Plain, None, &[]);
    let out = run_with_timeout(
        Command::new(harden_bin())
            .args(["sbom", &format!("docker-archive:{}", p.display())])
            .env("TMPDIR", &tmpdir)
            .env("XDG_CACHE_HOME", dir.join("xdg")),
    );
    assert!(out.status.success(), "{}", dump(&out));
    for d in &dead {
        assert!(!d.exists(), "{} of a dead run must be swept", d.display());
    }
    for d in &live {
        assert!(d.exists(), "{} must stay", d.display());
    }
}

// ------------------------------------------------------------------ 9: the cache's parents

/// A cache directory under a parent another user can write (non-sticky) or owns: refused before
/// any work (exit 1, naming the parent), so a directory swapped in by that user — holding a
/// setuid `bin/backdoor` as a cached rewrite — never reaches the output.
#[test]
fn hostile_cache_under_a_writable_parent_is_refused() {
    require_root();
    let tmp = tempdir("hostile-cache");
    let dir = tmp.path();
    let img = small_image();
    let src_dir = dir.join("src");
    layout(&src_dir, &img, |_| {});
    let src = format!("oci:{}:1", src_dir.display());
    let shared = dir.join("shared");
    let cache = shared.join("harden");
    std::fs::create_dir_all(&cache).unwrap();
    // The other user's planted cache entry, as if swapped in: a setuid backdoor.
    std::fs::create_dir_all(cache.join("blobs/sha256")).unwrap();
    std::fs::write(cache.join("blobs/sha256/backdoor"), tar_of(&[("bin/backdoor", b"evil")])).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (mode, owner, needle) in [(0o777, 0, "is writable by other users"), (0o755, 65534, "owned by uid 65534")] {
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&shared, Some(owner), None).unwrap();
        let out = dir.join("out");
        let dst = format!("oci:{}:1", out.display());
        let cache_flag = cache.display().to_string();
        let run = bounded(dir, &["rebuild", &src, &dst, "-p", "baseline", "--cache-dir", &cache_flag]);
        expect_error(&run, needle);
        assert!(run.stderr.contains(&format!("its parent {}", shared.display())), "{}", run.stderr);
        assert!(!out.exists(), "nothing written");
    }
    // Sticky and root-owned (a pod's volume root made sticky): accepted, and the result holds
    // no backdoor.
    std::os::unix::fs::chown(&shared, Some(0), None).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = dir.join("out");
    let dst = format!("oci:{}:1", out.display());
    let cache_flag = cache.display().to_string();
    let run = bounded(dir, &["rebuild", &src, &dst, "-p", "baseline", "--cache-dir", &cache_flag]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for e in listing(&out) {
        if let Ok(b) = std::fs::read(out.join(&e)) {
            assert!(!b.windows(8).any(|w| w == b"backdoor"), "{e} holds the backdoor");
        }
    }
}

// ------------------------------------------------------------------ 5-7: package databases

/// An image whose one layer holds `files` besides a tiny app.
fn db_image(dir: &Path, files: &[(&str, &[u8])]) -> String {
    let mut all: Vec<(&str, &[u8])> = vec![("bin/app", b"a program\n")];
    all.extend_from_slice(files);
    let img = image(&all);
    layout(dir, &img, |_| {});
    format!("oci:{}:1", dir.display())
}

/// A 64 KiB-page SQLite file whose `Packages` leaf has every cell pointer aimed at one 33 KB
/// cell (384 KiB on disk; copied once per pointer it was 2 GiB).
fn amplifying_sqlite() -> Vec<u8> {
    const PS: usize = 65536;
    fn varint(out: &mut Vec<u8>, v: u64) {
        assert!(v < 1 << 14);
        if v < 128 {
            out.push(v as u8);
        } else {
            out.extend([0x80 | (v >> 7) as u8, (v & 0x7f) as u8]);
        }
    }
    let record = |cols: &[&[u8]]| {
        let mut hdr = Vec::new();
        let mut body = Vec::new();
        for c in cols {
            varint(&mut hdr, 13 + 2 * c.len() as u64); // text
            body.extend_from_slice(c);
        }
        let mut out = vec![hdr.len() as u8 + 1];
        out.extend(hdr);
        out.extend(body);
        out
    };
    let mut db = vec![0u8; PS * 2];
    db[..16].copy_from_slice(b"SQLite format 3\0");
    db[16..18].copy_from_slice(&1u16.to_be_bytes()); // 65536
    db[56..60].copy_from_slice(&[0, 0, 0, 1]);
    // sqlite_master: ("table", "Packages", "Packages", 2).
    let mut m = record(&[b"table", b"Packages", b"Packages"]);
    m[0] += 1;
    m.insert(4, 1); // a 1-byte integer column type after the three texts
    m.push(2);
    let mut cell = Vec::new();
    varint(&mut cell, m.len() as u64);
    varint(&mut cell, 1);
    cell.extend(&m);
    let at = PS - cell.len();
    db[at..PS].copy_from_slice(&cell);
    db[100] = 0x0d;
    db[103..105].copy_from_slice(&1u16.to_be_bytes());
    db[105..107].copy_from_slice(&(at as u16).to_be_bytes());
    db[108..110].copy_from_slice(&(at as u16).to_be_bytes());
    // Page 2: one 33 KB row, pointed at by every cell pointer that fits.
    let blob = vec![b'x'; 33_000];
    let mut rec = vec![3u8, 0];
    rec.extend([
        0x80 | ((12 + 2 * blob.len() as u64) >> 14) as u8,
        0x80 | (((12 + 2 * blob.len() as u64) >> 7) & 0x7f) as u8,
        ((12 + 2 * blob.len() as u64) & 0x7f) as u8,
    ]);
    rec[0] = 1 + 1 + 3;
    rec.extend(&blob);
    let mut cell = Vec::new();
    let l = rec.len() as u64;
    cell.extend([0x80 | (l >> 14) as u8, 0x80 | ((l >> 7) & 0x7f) as u8, (l & 0x7f) as u8]);
    cell.push(1);
    cell.extend(&rec);
    let p2 = PS;
    let at = PS - cell.len();
    db[p2 + at..p2 + PS].copy_from_slice(&cell);
    db[p2] = 0x0d;
    let cells = (at - 8) / 2 - 1;
    db[p2 + 3..p2 + 5].copy_from_slice(&(cells as u16).to_be_bytes());
    db[p2 + 5..p2 + 7].copy_from_slice(&(at as u16).to_be_bytes());
    for i in 0..cells {
        db[p2 + 8 + 2 * i..p2 + 10 + 2 * i].copy_from_slice(&(at as u16).to_be_bytes());
    }
    db
}

/// rpmdb.sqlite whose cells share bytes; dpkg's duplicate stanzas over a 100k-line list and a
/// shared status.d md5sums; 400k dependency names: each ends in bounded memory and time, the
/// database refused (named) or read once.
#[test]
fn hostile_package_databases_are_bounded() {
    require_root();
    let tmp = tempdir("hostile-pkgdb");
    let dir = tmp.path();
    let sqlite = amplifying_sqlite();
    let list: String = (0..100_000).map(|i| format!("/usr/share/p/{i}\n")).collect();
    let stanza = "Package: big\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n".repeat(300);
    let many: String = (0..300).map(|i| format!("Package: p{i}\nVersion: 1\n\n")).collect();
    let md5: String = (0..100_000).map(|i| format!("00000000000000000000000000000000  usr/share/q/{i}\n")).collect();
    let deps: Vec<String> = (0..400_000).map(|i| format!("d{i}")).collect();
    let depends = format!(
        "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\nDepends: {}\n\n",
        deps.join(", ")
    );
    type Files<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: Vec<(&str, Files)> = vec![
        ("rpm-sqlite", vec![("usr/lib/sysimage/rpm/rpmdb.sqlite", &sqlite[..])]),
        (
            "dpkg-duplicates",
            vec![("var/lib/dpkg/status", stanza.as_bytes()), ("var/lib/dpkg/info/big.list", list.as_bytes())],
        ),
        (
            "status-d-md5sums",
            vec![
                ("var/lib/dpkg/status.d/base", many.as_bytes()),
                ("var/lib/dpkg/status.d/base.md5sums", md5.as_bytes()),
            ],
        ),
        ("dpkg-depends", vec![("var/lib/dpkg/status", depends.as_bytes())]),
    ];
    for (name, files) in cases {
        let d = dir.join(name);
        let src = db_image(&d, &files);
        for cmd in ["sbom", "check", "contract"] {
            let run = bounded(&d, &[cmd, &src]);
            if name == "dpkg-duplicates" && cmd == "sbom" {
                let said = run.stderr.contains("a second stanza for package big")
                    || run.stdout.contains("a second stanza for package big");
                assert!(said, "{cmd}: {}{}", run.stdout, run.stderr);
            }
        }
        let out = d.join("out");
        let dst = format!("oci:{}:1", out.display());
        bounded(&d, &["rebuild", &src, &dst, "-p", "baseline", "--no-cache", "--dry-run"]);
    }
}

// ------------------------------------------------------------------ 10: package globs

/// `[packages] remove` globs too complex together to match: refused at load (exit 2,
/// file:line:column), not a rebuild that removes nothing and exits 0.
#[test]
fn hostile_package_globs_are_refused_at_load() {
    let tmp = tempdir("hostile-globs");
    let q = "?".repeat(250);
    let mut globs = vec!["\"bash\"".to_string()];
    globs.extend((0..3900).map(|i| format!("\"{q}{i}\"")));
    let profile = tmp.path().join("p.toml");
    std::fs::write(&profile, format!("[packages]\nremove = [{}]\n", globs.join(","))).unwrap();
    let run = bounded(tmp.path(), &["profile", "validate", &profile.display().to_string()]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("p.toml:1:1"), "{}", run.stderr);
    assert!(run.stderr.contains("too complex"), "{}", run.stderr);
}
