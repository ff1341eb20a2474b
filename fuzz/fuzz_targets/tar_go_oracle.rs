//! Differential: arbitrary bytes (mutated archives) as a plain tar stream, listed by harden's
//! reader and by Go's `archive/tar` (integration/golist, built by `make fuzz`; its path in
//! `HARDEN_GOLIST`). Where harden reads an archive, Go must read it the same: every entry's
//! name, type, size, mode, uid, gid, link target and data offset. harden may refuse what Go
//! reads (it refuses what it cannot be sure of), never read what Go reads otherwise or refuses.
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

fuzz_target!(|data: &[u8]| {
    let ours = harden::layer::tarlist::listing(data);
    if !ours["error"].is_null() {
        return;
    }
    let file = std::env::temp_dir().join(format!("harden-fuzz-golist-{}.tar", std::process::id()));
    std::fs::write(&file, data).expect("writing the input for golist");
    let out = Command::new(golist()).arg(&file).output().expect("running golist");
    let go: serde_json::Value = serde_json::from_slice(&out.stdout).expect("golist prints JSON");
    assert!(go["error"].is_null(), "harden reads an archive Go refuses ({}):\nharden {ours}", go["error"]);
    assert_eq!(go["entries"], ours["entries"], "harden and Go frame the archive differently");
});
