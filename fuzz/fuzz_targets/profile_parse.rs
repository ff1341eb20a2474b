//! Arbitrary text as a profile file: loaded (TOML, schema, groups, globs, extends), and when it
//! loads, its rule sets compiled and matched. Errors are fine; panics and hangs are not.
#![no_main]

use harden::profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `extends` may name files; keep the fuzzer away from the disk's slow corners.
    if text.contains("/dev") || text.contains("/proc") || text.contains("/sys") {
        return;
    }
    if let Ok(p) = profile::load_str("fuzz.toml", text) {
        for rules in [&p.remove, &p.keep, &p.setuid_allow] {
            let rs = profile::RuleSet::new(rules);
            for path in ["usr/bin/sh", "etc/passwd", "a/b/c/d", ""] {
                let _ = rs.which(path);
            }
        }
        let _ = p.digest();
    }
});
