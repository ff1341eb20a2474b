//! Differential: arbitrary bytes (mutated archives) as a plain tar stream, listed by harden's
//! reader and by Go's `archive/tar` (integration/golist, built by `make fuzz`; its path in
//! `HARDEN_GOLIST`). Where harden reads an archive, Go must read it the same: every entry's
//! name, type, size, mode, uid, gid, link target and data offset. harden may refuse what Go
//! reads (it refuses what it cannot be sure of), never read what Go reads otherwise or refuses.
//! And what harden writes for such an archive (every entry changed, so every header is
//! rebuilt) Go must read as harden reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn golist() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let p = PathBuf::from(std::env::var_os("HARDEN_GOLIST").expect(
            "HARDEN_GOLIST must name the Go lister (make fuzz builds it: go build -o target/golist/golist integration/golist)",
        ));
        assert!(p.is_file(), "HARDEN_GOLIST={} is not a file", p.display());
        p
    })
}

fn go_list(data: &[u8]) -> serde_json::Value {
    let file = std::env::temp_dir().join(format!("harden-fuzz-golist-{}.tar", std::process::id()));
    std::fs::write(&file, data).expect("writing the input for golist");
    let out = Command::new(golist()).arg(&file).output().expect("running golist");
    serde_json::from_slice(&out.stdout).expect("golist prints JSON")
}

fuzz_target!(|data: &[u8]| {
    let ours = harden::layer::tarlist::listing(data);
    if !ours["error"].is_null() {
        return;
    }
    let go = go_list(data);
    assert!(go["error"].is_null(), "harden reads an archive Go refuses ({}):\nharden {ours}", go["error"]);
    assert_eq!(go["entries"], ours["entries"], "harden and Go frame the archive differently");

    let limits = || harden::layer::Limits::new(64 << 20, 1000, 100_000);
    let Ok(idx) = harden::scan::scan_layer(data, None, None, &limits()) else { return };
    let mut plan = harden::plan::LayerPlan::default();
    for e in &idx.entries {
        plan.changes.insert(e.path.to_string(), harden::plan::EntryChange { mode: Some(0o600), ..Default::default() });
    }
    let settings = harden::rewrite::Settings {
        splice: false,
        ..harden::rewrite::Settings::new(harden::layer::codec::OutputCodec::Gzip(1))
    };
    let (out, _) = harden::rewrite::rewrite_layer(std::sync::Arc::new(data.to_vec()), || Ok(Vec::new()), &plan, settings, &limits())
        .expect("a layer that scans must rewrite");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut harden::layer::codec::decoder(&out[..]).expect("gzip").1, &mut plain).expect("gunzip");
    let (go, ours) = (go_list(&plain), harden::layer::tarlist::listing(&plain[..]));
    assert!(go["error"].is_null() && ours["error"].is_null(), "the rewrite: Go {}, harden {}", go["error"], ours["error"]);
    assert_eq!(go["entries"], ours["entries"], "harden and Go frame harden's rewrite differently");
});
