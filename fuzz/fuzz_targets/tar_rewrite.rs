//! Arbitrary bytes as a layer blob (gzip, zstd or plain tar, sniffed as harden does): scanned,
//! planned with a profile that removes, chmods and strips, and rewritten. Errors are fine;
//! panics, hangs and runaway memory are not. A rewrite that succeeds must scan back cleanly
//! with the plan's removals gone.
#![no_main]

use harden::fs::FinalFs;
use harden::layer::codec::OutputCodec;
use harden::layer::Limits;
use harden::{plan, profile, rewrite, scan};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn profile() -> &'static profile::Profile {
    static P: OnceLock<profile::Profile> = OnceLock::new();
    P.get_or_init(|| {
        profile::load_str(
            "fuzz.toml",
            "extends = \"strict\"\n[files]\nremove = [\"/a\", \"b*\", \"/etc/**/x\"]\nkeep = [\"/a/keep\"]\n",
        )
        .expect("fuzz profile")
    })
}

fuzz_target!(|data: &[u8]| {
    // Small limits: a bomb is found quickly, and memory stays small.
    let limits = || Limits::new(64 << 20, 1000, 100_000);
    let Ok(index) = scan::scan_layer(data, None, None, &limits()) else { return };
    let fs = FinalFs::build(vec![index]);
    let p = plan::plan(&fs, profile());
    let lp = &p.layers[0];
    let (out, rw) = rewrite::rewrite_layer(std::sync::Arc::new(data.to_vec()), || Ok(Vec::new()), lp, rewrite::Settings::new(OutputCodec::Gzip(1)), &limits())
        .expect("a layer that scans must rewrite");
    let back = scan::scan_layer(&out[..], None, Some(&rw.diff_id), &limits()).expect("the rewrite must scan back");
    for e in &back.entries {
        assert!(!e.escapes, "an escaping name survived the rewrite: {}", e.path);
        let removed = lp.changes.get(e.path).is_some_and(|c| c.remove && c.promote_to.is_none());
        assert!(
            !removed || lp.changes.values().any(|c| c.promote_to.as_deref() == Some(e.path)),
            "{} was to be removed",
            e.path
        );
    }
});
