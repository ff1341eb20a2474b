//! A runc bundle of an image: its blobs laid out as a small OCI layout (hard links to the
//! run's files where it can), unpacked by `umoci unpack`, and the runtime config umoci writes
//! made to run it as the source asks or as the result's contract says.
//!
//! Owns: the layout, the unpack and the runtime config's edits. Must not: start containers or
//! probe them.

use crate::contract::Contract;
use crate::digest::Digest;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a blob's bytes are.
pub enum Bytes {
    File(PathBuf),
    Memory(Vec<u8>),
}

/// A layer as the bundle needs it.
pub struct Layer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub bytes: Bytes,
}

/// An image to run: its config (bytes as they will be stored) and its layers, in order.
pub struct Image {
    pub config: Vec<u8>,
    pub layers: Vec<Layer>,
}

/// Docker's default capabilities (what `docker run` gives a container that asks for none).
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// How a bundle runs.
pub enum How<'a> {
    /// As the image asks: its user, a writable root, Docker's default capabilities.
    AsItAsks,
    /// As the contract says: its numeric user, read-only root, its tmpfs mounts and
    /// capabilities, no-new-privileges when it says so; each of `volumes` on a fresh directory.
    Contract { contract: &'a Contract, volumes: &'a [String] },
}

/// The OCI media type umoci reads for a layer of `media_type` (Docker's names mapped).
fn oci_layer_type(media_type: &str) -> &'static str {
    if media_type.contains("zstd") {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else if media_type.contains("gzip") {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    }
}

fn put_blob(blobs: &Path, digest: &Digest, bytes: &Bytes) -> Result<()> {
    let hex = digest.as_str().strip_prefix("sha256:").ok_or_else(|| anyhow!("{digest}: not a sha256 digest"))?;
    let to = blobs.join(hex);
    if to.exists() {
        return Ok(());
    }
    match bytes {
        Bytes::Memory(b) => std::fs::write(&to, b)?,
        Bytes::File(from) => {
            if std::fs::hard_link(from, &to).is_err() {
                std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
            }
        }
    }
    Ok(())
}

/// Unpack `image` into `dir/bundle` (`dir/layout` holds its blobs), made to run `how`.
/// `volumes_dir` gets a fresh directory per contract volume.
pub fn make(image: &Image, dir: &Path, how: &How) -> Result<PathBuf> {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let config_digest = Digest::of(&image.config);
    put_blob(&blobs, &config_digest, &Bytes::Memory(image.config.clone()))?;
    let mut layers = Vec::new();
    for l in &image.layers {
        put_blob(&blobs, &l.digest, &l.bytes)?;
        layers.push(json!({"mediaType": oci_layer_type(&l.media_type), "digest": l.digest.as_str(), "size": l.size}));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.as_str(),
                   "size": image.config.len()},
        "layers": layers,
    }))?;
    let manifest_digest = Digest::of(&manifest);
    put_blob(&blobs, &manifest_digest, &Bytes::Memory(manifest.clone()))?;
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest.as_str(),
        "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "run"}}]});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;

    let bundle = dir.join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:run", layout.display()))
        .arg(&bundle)
        .output()
        .map_err(|e| anyhow!("--verify-run unpacks images with umoci (Debian package `umoci`): {e}"))?;
    if !out.status.success() {
        bail!("umoci unpack failed: {}", String::from_utf8_lossy(&out.stderr).trim().replace('\n', " "));
    }
    // The layout's blobs are no longer needed (the rootfs is unpacked).
    let _ = std::fs::remove_dir_all(&layout);
    let path = bundle.join("config.json");
    let mut rt: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    configure(&mut rt, how, dir)?;
    std::fs::write(&path, serde_json::to_vec_pretty(&rt)?)?;
    Ok(bundle)
}

fn caps(names: &[String]) -> Value {
    json!(names.iter().map(|c| format!("CAP_{c}")).collect::<Vec<_>>())
}

/// The runtime config umoci wrote, made to run `how`: no terminal, a private network
/// namespace (loopback only), and the user, root, capabilities and mounts of `how`.
fn configure(rt: &mut Value, how: &How, dir: &Path) -> Result<()> {
    rt["process"]["terminal"] = json!(false);
    // A private network namespace (runc brings its loopback up), no other network.
    let ns = rt["linux"]["namespaces"].as_array_mut().ok_or_else(|| anyhow!("umoci's config has no namespaces"))?;
    ns.retain(|n| n["type"] != "network");
    ns.push(json!({"type": "network"}));
    match how {
        How::AsItAsks => {
            let set: Vec<String> = DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
            for s in ["bounding", "effective", "inheritable", "permitted"] {
                rt["process"]["capabilities"][s] = caps(&set);
            }
            rt["process"]["capabilities"]["ambient"] = json!([]);
            rt["root"]["readonly"] = json!(false);
        }
        How::Contract { contract, volumes } => {
            let sc = &contract.security_context;
            rt["process"]["user"] = json!({"uid": sc.run_as_user, "gid": sc.run_as_group});
            rt["root"]["readonly"] = json!(sc.read_only_root_filesystem);
            rt["process"]["noNewPrivileges"] = json!(!sc.allow_privilege_escalation);
            for s in ["bounding", "effective", "inheritable", "permitted", "ambient"] {
                rt["process"]["capabilities"][s] = caps(&sc.capabilities.add);
            }
            let mounts = rt["mounts"].as_array_mut().ok_or_else(|| anyhow!("umoci's config has no mounts"))?;
            mounts.retain(|m| m["type"] != "tmpfs" || m["destination"].as_str().is_some_and(|d| d.starts_with("/dev")));
            // Exactly the contract's docker flags: `--tmpfs PATH[:OPTS]`, and each volume a
            // fresh directory owned by the user (as fsGroup or a new named volume gives it).
            let args = &contract.docker_run_args;
            for w in args.windows(2).filter(|w| w[0] == "--tmpfs") {
                let (path, opts) = w[1].split_once(':').unwrap_or((w[1].as_str(), ""));
                let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
                options.extend(opts.split(',').filter(|o| !o.is_empty()).map(str::to_string));
                mounts.push(json!({"destination": path, "type": "tmpfs", "source": "tmpfs", "options": options}));
            }
            for (i, v) in volumes.iter().enumerate() {
                let host = dir.join(format!("volume-{i}"));
                std::fs::create_dir_all(&host)?;
                std::os::unix::fs::chown(&host, Some(sc.run_as_user as u32), Some(sc.run_as_group as u32))
                    .with_context(|| format!("{}", host.display()))?;
                mounts.push(json!({"destination": v, "type": "bind", "source": host,
                                   "options": ["rbind", "rw", "nosuid", "nodev"]}));
            }
        }
    }
    Ok(())
}
