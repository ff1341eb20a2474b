//! Manifest and layer formats: a Docker schema2 image stays Docker schema2 (its media types,
//! and the config fields harden does not model, survive), and zstd and uncompressed input
//! layers are read and written back as gzip.

use crate::common::*;
use serde_json::Value;

#[test]
fn docker_schema2_stays_docker_and_zstd_input_is_read() {
    let reg = Registry::start(false);
    let tmp = tempdir("formats");
    let fx = fixture("debian");
    // Docker schema2, zstd layers: skopeo converts both on the way in.
    skopeo_copy_args(&fx.oci_ref(), &reg.docker("docker/debian:1"), &["--format", "v2s2"]);
    // Through a layout: pushed straight to the registry, skopeo would reuse the gzip blob it
    // just pushed instead of recompressing.
    let zl = format!("oci:{}:z", tmp.path().join("zstd-layout").display());
    skopeo_copy_args(&fx.oci_ref(), &zl, &["--dest-compress", "--dest-compress-format", "zstd"]);
    skopeo_copy(&zl, &reg.docker("zstd/debian:1"));
    let src_raw: Value =
        serde_json::from_slice(&skopeo_inspect_raw_bytes(&reg.docker("docker/debian:1"), &[])).unwrap();
    assert_eq!(src_raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    let zstd_raw: Value = serde_json::from_slice(&skopeo_inspect_raw_bytes(&reg.docker("zstd/debian:1"), &[])).unwrap();
    assert!(zstd_raw["layers"][0]["mediaType"].as_str().unwrap().ends_with("zstd"), "{zstd_raw}");

    // The debian fixture's CMD is a shell: baseline keeps shells, so it rebuilds.
    let out = harden(&[
        "rebuild",
        &reg.image("docker/debian:1"),
        &reg.image("docker/hard:1"),
        "-p",
        "baseline",
        "--no-cache",
    ]);
    let pinned = expect_pinned(&out);
    let raw: Value = serde_json::from_slice(&skopeo_inspect_raw_bytes(&pinned.reference(), &[])).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(raw["config"]["mediaType"], "application/vnd.docker.container.image.v1+json");
    for l in raw["layers"].as_array().unwrap() {
        assert_eq!(l["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip", "{raw}");
    }
    // Docker schema2 has no manifest annotations: harden adds none.
    assert!(raw.get("annotations").is_none(), "{raw}");
    skopeo_copy(&pinned.reference(), &format!("oci:{}:d", tmp.path().join("d").display()));

    let out =
        harden(&["rebuild", &reg.image("zstd/debian:1"), &reg.image("zstd/hard:1"), "-p", "baseline", "--no-cache"]);
    let pinned_z = expect_pinned(&out);
    let raw: Value = serde_json::from_slice(&skopeo_inspect_raw_bytes(&pinned_z.reference(), &[])).unwrap();
    assert!(raw["layers"][0]["mediaType"].as_str().unwrap().ends_with("tar+gzip"), "{raw}");
    // Same content as from the gzip source: the rewritten layer's tar is identical (its blob is
    // not: from gzip, the source's untouched deflate blocks are spliced in; zstd is recompressed).
    let from_gzip = harden(&["rebuild", &fx.oci_ref(), &reg.image("gz/hard:1"), "-p", "baseline", "--no-cache"]);
    let diff_ids = |r: &str| skopeo_inspect_config(r, &[])["rootfs"]["diff_ids"].clone();
    assert_eq!(diff_ids(&pinned_z.reference()), diff_ids(&expect_pinned(&from_gzip).reference()));
    // With --recompress, the gzip source's layer is compressed in full: the very same blob.
    let full =
        harden(&["rebuild", &fx.oci_ref(), &reg.image("gz/full:1"), "-p", "baseline", "--no-cache", "--recompress"]);
    let raw_f: Value =
        serde_json::from_slice(&skopeo_inspect_raw_bytes(&expect_pinned(&full).reference(), &[])).unwrap();
    assert_eq!(raw["layers"][0]["digest"], raw_f["layers"][0]["digest"]);
    let bundle = tmp.path().join("bundle");
    skopeo_copy(&pinned_z.reference(), &format!("oci:{}:z", tmp.path().join("z").display()));
    umoci_unpack(&format!("oci:{}:z", tmp.path().join("z").display()), &bundle);
    let run = runc_run(&bundle);
    assert!(run.status.success(), "{}", dump(&run));
    assert_eq!(stdout_str(&run), "hello from debian\n");
}
