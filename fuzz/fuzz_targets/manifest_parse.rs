//! Arbitrary bytes as an image manifest and as an image config: parsed as harden parses them,
//! and the config edited as a rebuild would. Errors are fine; panics are not.
#![no_main]

use harden::config::{self, ConfigEdit};
use harden::digest::Digest;
use harden::image::{self, ManifestView};
use harden::profile;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn baseline() -> &'static profile::Profile {
    static P: OnceLock<profile::Profile> = OnceLock::new();
    P.get_or_init(|| profile::load(&["strict".into()]).expect("built-in"))
}

fuzz_target!(|data: &[u8]| {
    for mt in [image::OCI_MANIFEST, image::DOCKER_MANIFEST] {
        if let Ok(v) = ManifestView::parse(data, mt) {
            let _ = v.layer_media_type(harden::layer::codec::OutputCodec::Gzip(6));
            let _ = serde_json::to_vec(&v.json);
        }
    }
    let Ok(mut cfg) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let n = cfg["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
    let ids = image::diff_ids(&cfg, n).unwrap_or_default();
    let _ = config::epoch_of(cfg["created"].as_str().unwrap_or(""));
    if cfg.is_object() {
        let edit = ConfigEdit {
            profile: baseline(),
            source_name: Some("example.com/app:1".into()),
            source_digest: Digest::of(data),
            diff_ids: ids,
            user: Some("65532:65532".into()),
            added_layer: false,
            summary: "fuzz".into(),
            created: None,
        };
        if config::edit(&mut cfg, &edit).is_ok() {
            serde_json::to_vec(&cfg).expect("an edited config serialises");
        }
    }
});
