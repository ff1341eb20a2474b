//! Computes the build id that keys harden's caches (see src/build_id.rs, which this script
//! compiles as its own module): a digest of the sources, the lock file and the compiler and
//! build settings, given to the crate as `HARDEN_BUILD_ID`.

#[path = "src/build_id.rs"]
mod build_id;

fn main() {
    let base = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    for root in build_id::ROOTS {
        println!("cargo:rerun-if-changed={root}");
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = std::process::Command::new(&rustc)
        .arg("-vV")
        .output()
        .unwrap_or_else(|e| panic!("build id: cannot run {rustc:?} -vV: {e}"));
    let mut settings = vec![("rustc".to_string(), String::from_utf8_lossy(&version.stdout).into_owned())];
    for (k, v) in std::env::vars() {
        let setting = matches!(
            k.as_str(),
            "PROFILE"
                | "OPT_LEVEL"
                | "DEBUG"
                | "TARGET"
                | "HOST"
                | "CARGO_ENCODED_RUSTFLAGS"
                | "CARGO_CFG_TARGET_FEATURE"
        ) || k.starts_with("CARGO_FEATURE_");
        if setting {
            settings.push((k, v));
        }
    }
    settings.sort();
    let id = build_id::material(&base, &build_id::ROOTS, &settings)
        .unwrap_or_else(|e| panic!("build id: cannot read the sources under {}: {e}", base.display()));
    println!("cargo:rustc-env=HARDEN_BUILD_ID={id}");
}
