//! Archives as a source and a sink: `docker-archive:` (`docker save`'s format) and
//! `oci-archive:` (an OCI layout in a tar, as skopeo and buildah write them).
//!
//! Reading unpacks the archive once (gzip, zstd or plain; every file hashed on the way) into
//! this endpoint's own `harden-*` temporary directory as an OCI layout, and from then on reads
//! it like `oci:`. A docker-archive's chosen image gets a Docker schema 2 manifest there, built
//! from its `manifest.json`: the layer files as they are (their media type from their
//! compression), the config by its digest. Names that assert a digest (`blobs/sha256/<hex>`,
//! `<hex>.json`) are checked against the bytes at once; every layer is checked again by the
//! scan against its digest and the config's diff_id, as for any source.
//!
//! Writing collects blobs in such a layout and packs the archive when the manifest is stored —
//! the push protocol's last step, so blobs are all there — into a temporary file beside FILE,
//! renamed over FILE when complete. Entries are sorted, with mtime `SOURCE_DATE_EPOCH` (else
//! 0), uid/gid 0 and fixed modes, so the same image gives the same archive bytes. An existing
//! FILE is replaced, as skopeo does.
//!
//! Unpacking is bounded on disk and in memory by what each entry can be used as: `index.json`,
//! `manifest.json`, `oci-layout` and `repositories` by the manifest limit ([`MAX_MANIFEST`]), a
//! docker-archive's `*.json` (configs) by [`MAX_CONFIG`], a blob or layer file by
//! `--max-layer-size` (a layer blob is at most a layer, [`NetOptions::max_blob`]), and the whole
//! by [`MAX_LAYERS`] such blobs. An entry over its bound stops the unpack at once, from its
//! header's size, before a byte of it is written. Names no reader of the format uses (in an
//! oci-archive, anything but `index.json`, `oci-layout` and `blobs/sha256/<hex>`) are not
//! written at all; an entry a later one of the same name replaces is removed at once; and
//! once the image is laid out, every file of the archive it does not use is removed.
//!
//! [`NetOptions::max_blob`]: super::NetOptions::max_blob
//!
//! Owns: (un)packing archives, the docker-archive ⇄ manifest mapping. Must not: know about
//! profiles or layer contents beyond their compression.

use super::layout::Layout;
use super::{LocalBlob, Manifest, MAX_CONFIG, MAX_MANIFEST};
use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::image;
use crate::layer::codec::{self, Codec};
use crate::reference::{ArchiveName, ImageRef};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The media type skopeo (containers/image) gives every layer of a docker-archive it reads,
/// compressed or not; used for the digest it would see (see [`Archive::stored_digest`]).
const SKOPEO_ARCHIVE_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// More entries than any image archive has; a bound on what a hostile one costs.
const MAX_ENTRIES: usize = 1 << 20;
/// The whole unpack is bounded by this many blobs of the largest size allowed: more layers than
/// Docker (127) or overlayfs mounts take.
pub const MAX_LAYERS: u64 = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Oci,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    /// Unpacked: reads come from it, writes add to it (signing an oci-archive keeps its image).
    Read,
    /// Written to before any read: the archive is replaced by what is written.
    Written,
}

pub struct Archive {
    pub kind: Kind,
    pub file: PathBuf,
    /// Which image of a docker-archive to read.
    name: Option<ArchiveName>,
    spool: crate::spool::Spool,
    layout: Layout,
    /// The largest blob unpacked (`--max-layer-size`).
    max_blob: u64,
    state: Mutex<State>,
    /// The manifest digest stored → the digest a reader of the archive sees (they differ for a
    /// docker-archive, which holds no manifest).
    stored: Mutex<HashMap<Digest, Digest>>,
}

/// Where an entry of an archive being packed comes from.
enum Src {
    Dir,
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// A regular file of an unpacked archive.
struct Unpacked {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

impl Archive {
    pub fn open(r: &ImageRef, max_blob: u64) -> Result<Archive> {
        let (kind, file, name) = match r {
            ImageRef::DockerArchive { file, name, .. } => (Kind::Docker, file.clone(), name.clone()),
            ImageRef::OciArchive { file, .. } => (Kind::Oci, file.clone(), None),
            _ => bail!("{r}: not an archive"),
        };
        let spool = crate::spool::create().context("cannot create a temporary directory")?;
        let layout = Layout::new(spool.path().join("layout"));
        Ok(Archive {
            kind,
            file,
            name,
            spool,
            layout,
            max_blob,
            state: Mutex::new(State::Fresh),
            stored: Mutex::default(),
        })
    }

    fn what(&self) -> String {
        match self.kind {
            Kind::Docker => format!("docker-archive:{}", self.file.display()),
            Kind::Oci => format!("oci-archive:{}", self.file.display()),
        }
    }

    /// `r` as a reference into the unpacked layout.
    fn layout_ref(&self, r: &ImageRef) -> ImageRef {
        let tag = match self.kind {
            Kind::Oci => r.tag().map(str::to_string),
            // The unpacked docker-archive holds the one image chosen.
            Kind::Docker => None,
        };
        ImageRef::Layout { dir: self.layout.dir.clone(), tag, digest: r.digest().cloned() }
    }

    /// Unpack on the first read (once); a no-op when this endpoint has been written to first.
    fn load(&self) -> Result<()> {
        let mut state = self.state.lock().map_err(|_| anyhow!("{}: a reader failed", self.what()))?;
        if *state == State::Fresh {
            match self.kind {
                Kind::Oci => self.unpack_oci(),
                Kind::Docker => self.unpack_docker(),
            }
            .with_context(|| self.what())?;
            // What the layout does not use goes now, not at the end of the run.
            let _ = std::fs::remove_dir_all(self.spool.path().join("raw"));
            *state = State::Read;
        }
        Ok(())
    }

    fn writing(&self) -> Result<()> {
        let mut state = self.state.lock().map_err(|_| anyhow!("{}: a writer failed", self.what()))?;
        if *state == State::Fresh {
            *state = State::Written;
        }
        Ok(())
    }

    pub fn manifest(&self, r: &ImageRef) -> Result<Manifest> {
        self.load()?;
        self.layout.manifest(&self.layout_ref(r)).with_context(|| self.what())
    }

    pub fn manifest_opt(&self, r: &ImageRef) -> Result<Option<Manifest>> {
        if *self.state.lock().map_err(|_| anyhow!("{}: a reader failed", self.what()))? == State::Fresh
            && !self.file.exists()
        {
            return Ok(None);
        }
        self.load()?;
        self.layout.manifest_opt(&self.layout_ref(r)).with_context(|| self.what())
    }

    pub fn blob_bytes(&self, d: &Digest, max: u64) -> Result<Vec<u8>> {
        self.load()?;
        self.layout.blob_bytes(d, max).with_context(|| self.what())
    }

    pub fn blob_local(&self, d: &Digest, size: u64) -> Result<LocalBlob> {
        self.load()?;
        self.layout.blob_local(d, size).with_context(|| self.what())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.layout.has_blob(d)
    }

    pub fn put_blob(&self, d: &Digest, src: &Path) -> Result<()> {
        self.writing()?;
        self.layout.put_blob(d, src)
    }

    pub fn put_blob_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        self.writing()?;
        self.layout.put_blob_bytes(d, bytes)
    }

    /// Whether an index can be stored (a docker-archive holds images, not indexes).
    /// Whether the archive file can be written: a temporary file made and removed beside it.
    pub fn check_writable(&self) -> Result<()> {
        let dir = match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("{}: cannot write in {}", self.file.display(), dir.display()))?;
        Ok(())
    }

    pub fn holds_index(&self) -> bool {
        match self.kind {
            Kind::Oci => true,
            Kind::Docker => false,
        }
    }

    /// Whether manifests are kept as given (a docker-archive keeps none: its `manifest.json`
    /// lists configs and layers).
    pub fn keeps_manifests(&self) -> bool {
        match self.kind {
            Kind::Oci => true,
            Kind::Docker => false,
        }
    }

    /// Whether signatures and attestations (manifests tagged beside the image) can be kept: an
    /// oci-archive is a layout; a docker-archive holds images only.
    pub fn holds_signatures(&self) -> bool {
        match self.kind {
            Kind::Oci => true,
            Kind::Docker => false,
        }
    }

    /// Store the manifest (its blobs are already here) and pack the archive.
    pub fn put_manifest(&self, r: &ImageRef, m: &Manifest) -> Result<()> {
        self.writing()?;
        match self.kind {
            Kind::Oci => {
                self.layout.put_manifest(&self.layout_ref(r), m)?;
                self.pack_oci()
            }
            Kind::Docker => {
                if image::is_index(&m.media_type) {
                    bail!("{}: a docker-archive holds images, not an index; choose one --platform", self.what());
                }
                let seen = self.pack_docker(r, m)?;
                if let Ok(mut s) = self.stored.lock() {
                    s.insert(m.digest.clone(), seen);
                }
                Ok(())
            }
        }
        .with_context(|| self.what())
    }

    /// The digest a reader of the archive sees for the manifest stored as `d`: `d` itself in an
    /// oci-archive; in a docker-archive, which keeps no manifest, the one `skopeo inspect
    /// docker-archive:FILE` reports — skopeo's Docker schema 2 manifest built from
    /// `manifest.json` (layers uncompressed, by diff_id, media type `…tar.gzip`).
    pub fn stored_digest(&self, d: &Digest) -> Digest {
        self.stored.lock().ok().and_then(|s| s.get(d).cloned()).unwrap_or_else(|| d.clone())
    }

    // ------------------------------------------------------------------ reading

    /// The most bytes an entry named `name` may have, by what it can be used as; None for a
    /// name no reader of this kind of archive uses (not written at all).
    fn entry_limit(&self, name: &str) -> Option<u64> {
        let document = MAX_MANIFEST as u64;
        match (self.kind, name) {
            (_, "index.json" | "oci-layout") => Some(document),
            (Kind::Oci, n) => n
                .strip_prefix("blobs/sha256/")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|_| self.max_blob),
            (Kind::Docker, "manifest.json" | "repositories") => Some(document),
            (Kind::Docker, n) if n.ends_with(".json") || n.ends_with("/json") => Some(MAX_CONFIG),
            (Kind::Docker, _) => Some(self.max_blob),
        }
    }

    /// Every regular file of the archive a reader may use, hashed, by its cleaned name (each
    /// within [`Archive::entry_limit`], all within [`MAX_LAYERS`] blobs); symlinks by name → target.
    fn unpack(&self) -> Result<(BTreeMap<String, Unpacked>, HashMap<String, String>)> {
        let f = std::fs::File::open(&self.file).context("cannot open the archive")?;
        let (_, r) = codec::decoder(f).context("cannot read the archive")?;
        let mut ar = tar::Archive::new(StopOnSignal(r));
        let raw = self.spool.path().join("raw");
        std::fs::create_dir_all(&raw)?;
        let mut files: BTreeMap<String, Unpacked> = BTreeMap::new();
        let mut links = HashMap::new();
        let total_limit = self.max_blob.saturating_mul(MAX_LAYERS);
        let mut total = 0u64;
        for (i, e) in ar.entries().context("not a tar archive")?.enumerate() {
            if i >= MAX_ENTRIES {
                bail!("more than {MAX_ENTRIES} entries; not an image archive");
            }
            let mut e = e.context("not a readable tar archive")?;
            let raw_name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let Some(name) = clean(&raw_name, "") else {
                bail!("entry `{raw_name}` leaves the archive");
            };
            if name.is_empty() {
                continue; // `./`, the archive's root directory
            }
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let Some(limit) = self.entry_limit(&name) else { continue };
                    let size = e.size();
                    if size > limit {
                        bail!("entry `{name}` is {size} bytes, more than the {limit}-byte limit for what it can be (--max-layer-size bounds blobs)");
                    }
                    total = total.saturating_add(size);
                    if total > total_limit {
                        bail!("more than {total_limit} bytes in all ({MAX_LAYERS} × --max-layer-size); not an image archive");
                    }
                    if let Some(old) = files.remove(&name) {
                        let _ = std::fs::remove_file(&old.path);
                    }
                    let path = raw.join(i.to_string());
                    let mut w = HashingWriter::new(BufWriter::new(std::fs::File::create(&path)?));
                    std::io::copy(&mut (&mut e).take(limit + 1), &mut w)
                        .with_context(|| format!("entry `{name}` is truncated"))?;
                    let (w, digest, size) = w.finish();
                    w.into_inner().map_err(|e| e.into_error())?;
                    if size > limit {
                        bail!("entry `{name}` is more than the {limit}-byte limit for what it can be");
                    }
                    links.remove(&name);
                    files.insert(name, Unpacked { path, digest, size });
                }
                tar::EntryType::Symlink => {
                    let target = e.link_name_bytes().map(|t| String::from_utf8_lossy(&t).into_owned());
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                    if let Some(t) = target.and_then(|t| clean(&t, &dir)) {
                        if let Some(old) = files.remove(&name) {
                            let _ = std::fs::remove_file(&old.path);
                        }
                        links.insert(name, t);
                    }
                }
                // Directories and the rest carry nothing an image archive needs.
                _ => {}
            }
        }
        Ok((files, links))
    }

    fn unpack_oci(&self) -> Result<()> {
        let (files, _) = self.unpack()?;
        let blobs = self.layout.dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        for (name, f) in &files {
            if name == "index.json" || name == "oci-layout" {
                std::fs::rename(&f.path, self.layout.dir.join(name))?;
            } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                let claimed = Digest::parse(&format!("sha256:{hex}")).map_err(|e| anyhow!("`{name}`: {e}"))?;
                if claimed != f.digest {
                    bail!("blob {claimed} has digest {} (corrupt or tampered)", f.digest);
                }
                std::fs::rename(&f.path, blobs.join(hex))?;
            }
        }
        if !self.layout.dir.join("index.json").is_file() {
            bail!("no index.json: not an OCI layout archive");
        }
        Ok(())
    }

    fn unpack_docker(&self) -> Result<()> {
        let (files, links) = self.unpack()?;
        let find = |name: &str| -> Result<&Unpacked> {
            let mut n = clean(name, "").ok_or_else(|| anyhow!("manifest.json: `{name}` leaves the archive"))?;
            for _ in 0..16 {
                if let Some(f) = files.get(&n) {
                    return Ok(f);
                }
                match links.get(&n) {
                    Some(t) => n = t.clone(),
                    None => break,
                }
            }
            bail!("manifest.json names `{name}`, which is not a file of the archive")
        };
        let mf = find("manifest.json").map_err(|_| anyhow!("no manifest.json: not a docker-archive"))?;
        if mf.size > MAX_MANIFEST as u64 {
            bail!("manifest.json is larger than {MAX_MANIFEST} bytes");
        }
        let list: Value = serde_json::from_slice(&crate::files::read_regular(&mf.path, MAX_MANIFEST as u64)?)
            .map_err(|e| anyhow!("manifest.json is not valid JSON: {e}"))?;
        let list = list.as_array().ok_or_else(|| anyhow!("manifest.json is not a list of images"))?;
        let tags = |e: &Value| -> Vec<String> {
            e["RepoTags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)).collect()
        };
        let entry = match &self.name {
            Some(ArchiveName::Index(i)) => {
                list.get(*i).ok_or_else(|| anyhow!("no image @{i}: the archive holds {}", list.len()))?
            }
            Some(ArchiveName::Ref(n)) => {
                let want = [n.clone(), with_tag(n), format!("docker.io/{}", with_tag(n))];
                list.iter()
                    .find(|e| tags(e).iter().any(|t| want.contains(t)))
                    .ok_or_else(|| anyhow!("no image tagged `{n}` in manifest.json"))?
            }
            None if list.len() == 1 => &list[0],
            None => bail!("the archive holds {} images; name one with :REF or :@N", list.len()),
        };
        let config_name = entry["Config"].as_str().ok_or_else(|| anyhow!("manifest.json: an image has no Config"))?;
        let config = find(config_name)?;
        check_claim(config_name, &config.digest)?;
        if config.size > MAX_CONFIG {
            bail!("config `{config_name}` is larger than {MAX_CONFIG} bytes");
        }
        let config_json: Value = serde_json::from_slice(&crate::files::read_regular(&config.path, MAX_CONFIG)?)
            .map_err(|e| anyhow!("config `{config_name}` is not valid JSON: {e}"))?;
        let layer_names: Vec<&str> = entry["Layers"]
            .as_array()
            .ok_or_else(|| anyhow!("manifest.json: an image has no Layers"))?
            .iter()
            .map(|l| l.as_str().ok_or_else(|| anyhow!("manifest.json: a layer name is not a string")))
            .collect::<Result<_>>()?;
        let diff_ids = image::diff_ids(&config_json, layer_names.len())?;
        let blobs = self.layout.dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        let mut layers = Vec::new();
        for (name, diff_id) in layer_names.iter().zip(&diff_ids) {
            let f = find(name)?;
            check_claim(name, &f.digest)?;
            let mut head = [0u8; 4];
            let n = std::fs::File::open(&f.path)?.read(&mut head)?;
            let media_type = match Codec::sniff(&head[..n]) {
                Codec::None => {
                    if f.digest != *diff_id {
                        bail!("layer `{name}` has digest {}, but the config's diff_id is {diff_id}", f.digest);
                    }
                    DOCKER_LAYER_TAR
                }
                Codec::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Codec::Zstd => "application/vnd.docker.image.rootfs.diff.tar.zstd",
            };
            link_or_copy(&f.path, &blobs.join(f.digest.hex()))?;
            layers.push(json!({"mediaType": media_type, "size": f.size, "digest": f.digest.as_str()}));
        }
        link_or_copy(&config.path, &blobs.join(config.digest.hex()))?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": image::DOCKER_MANIFEST,
            "config": {"mediaType": image::DOCKER_CONFIG, "size": config.size, "digest": config.digest.as_str()},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest)?;
        let m = Manifest { digest: Digest::of(&bytes), bytes, media_type: image::DOCKER_MANIFEST.into() };
        let r = ImageRef::Layout { dir: self.layout.dir.clone(), tag: None, digest: None };
        self.layout.put_manifest(&r, &m)
    }

    // ------------------------------------------------------------------ writing

    fn pack_oci(&self) -> Result<()> {
        let mut entries = BTreeMap::new();
        entries.insert("blobs/".to_string(), Src::Dir);
        entries.insert("blobs/sha256/".to_string(), Src::Dir);
        for e in std::fs::read_dir(self.layout.dir.join("blobs/sha256"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            // Only finished blobs (temporary files have other names).
            if Digest::parse(&format!("sha256:{name}")).is_ok() {
                entries.insert(format!("blobs/sha256/{name}"), Src::File(e.path()));
            }
        }
        entries.insert("index.json".into(), Src::File(self.layout.dir.join("index.json")));
        entries.insert("oci-layout".into(), Src::File(self.layout.dir.join("oci-layout")));
        pack(&self.file, &entries)
    }

    /// The classic `docker save` format: `manifest.json`, the config as `<hex>.json`, each layer
    /// *uncompressed* as `<diff_id hex>.tar` (what skopeo writes). Uncompressed layers keyed by
    /// diff_id are the one form every reader accepts: `docker load` of any version (zstd layers
    /// need Docker 23+, and older ones read only tars), skopeo (which serves docker-archive
    /// layers by diff_id) and `ctr image import` (which hashes what it finds). Newer Docker's
    /// OCI-blob form keeps compressed blobs, which older `docker load` cannot read. Returns the
    /// digest skopeo sees ([`Archive::stored_digest`]).
    fn pack_docker(&self, r: &ImageRef, m: &Manifest) -> Result<Digest> {
        let view = image::ManifestView::parse(&m.bytes, &m.media_type)?;
        let config_bytes = self.layout.blob_bytes(&view.config.digest, MAX_CONFIG)?;
        if Digest::of(&config_bytes) != view.config.digest {
            bail!("config {}: its bytes have another digest", view.config.digest);
        }
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| anyhow!("config {} is not valid JSON: {e}", view.config.digest))?;
        let diff_ids = image::diff_ids(&config, view.layers.len())?;
        let repo_tags = match r {
            ImageRef::DockerArchive { name: Some(ArchiveName::Ref(n)), .. } => vec![with_tag(n)],
            ImageRef::DockerArchive { name: Some(ArchiveName::Index(i)), .. } => {
                bail!("`@{i}` chooses an image to read; name the image written with :REF (e.g. :app:1.0)")
            }
            _ => Vec::new(),
        };
        let mut entries = BTreeMap::new();
        let config_name = format!("{}.json", view.config.digest.hex());
        let mut seen_layers = Vec::new();
        let mut names = Vec::new();
        for (layer, diff_id) in view.layers.iter().zip(&diff_ids) {
            let name = format!("{}.tar", diff_id.hex());
            if !entries.contains_key(&name) {
                let blob = self.layout.blob_local(&layer.digest, layer.size)?.path;
                let (path, size) = self.uncompressed(&blob, &layer.digest, diff_id)?;
                entries.insert(name.clone(), Src::File(path));
                seen_layers.push(json!({"mediaType": SKOPEO_ARCHIVE_LAYER, "size": size, "digest": diff_id.as_str()}));
            } else {
                let again = seen_layers.iter().find(|l| l["digest"] == diff_id.as_str()).cloned();
                seen_layers.push(again.unwrap_or_default());
            }
            names.push(name);
        }
        let manifest_json = json!([{"Config": config_name, "RepoTags": repo_tags, "Layers": names}]);
        entries.insert("manifest.json".into(), Src::Bytes(serde_json::to_vec(&manifest_json)?));
        let seen = json!({
            "schemaVersion": 2,
            "mediaType": image::DOCKER_MANIFEST,
            "config": {"mediaType": image::DOCKER_CONFIG, "size": config_bytes.len(), "digest": view.config.digest.as_str()},
            "layers": seen_layers,
        });
        entries.insert(config_name, Src::Bytes(config_bytes));
        pack(&self.file, &entries)?;
        Ok(Digest::of(&serde_json::to_vec(&seen)?))
    }

    /// A layer blob as an uncompressed tar (the blob itself when it is one), checked against
    /// its diff_id; with its size.
    fn uncompressed(&self, blob: &Path, digest: &Digest, diff_id: &Digest) -> Result<(PathBuf, u64)> {
        let (codec, mut r) = codec::decoder(std::fs::File::open(blob)?)?;
        let (path, got, size) = if codec == Codec::None {
            let (got, size) = HashingReader::new(r).finish()?;
            (blob.to_path_buf(), got, size)
        } else {
            let path = self.spool.path().join(format!("plain-{}.tar", diff_id.hex()));
            let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?));
            std::io::copy(&mut r, &mut w).map_err(|e| anyhow!("layer {digest}: cannot decompress: {e}"))?;
            let (w, got, size) = w.finish();
            w.into_inner().map_err(|e| e.into_error())?;
            (path, got, size)
        };
        if got != *diff_id {
            bail!("layer {digest}: its uncompressed content has digest {got}, not the config's diff_id {diff_id}");
        }
        Ok((path, size))
    }
}

/// `name` (relative to the directory `dir` of the archive) as a plain relative path: no `.`,
/// no empty components, a leading `/` meaning the archive's root (`""` is the root itself); None
/// when it leaves the root.
/// A reader that fails once the run is interrupted (a signal), so an unpack stops at once.
struct StopOnSignal<R>(R);

impl<R: Read> Read for StopOnSignal<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if crate::spool::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("interrupted"));
        }
        self.0.read(buf)
    }
}

fn clean(name: &str, dir: &str) -> Option<String> {
    let mut parts: Vec<&str> = if name.starts_with('/') { Vec::new() } else { dir.split('/').collect() };
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.retain(|p| !p.is_empty());
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    parts.retain(|p| !p.is_empty());
    Some(parts.join("/"))
}

/// `REF` with `:latest` when it has no tag (what `docker load` lists).
fn with_tag(r: &str) -> String {
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// A name that states a digest (`blobs/sha256/<hex>`, `<hex>.json`, `<hex>.tar`) must be the
/// digest of its bytes.
fn check_claim(name: &str, got: &Digest) -> Result<()> {
    let base = name.strip_prefix("blobs/sha256/").unwrap_or(name);
    let hex = base.strip_suffix(".json").unwrap_or(base);
    let claimed = match Digest::parse(&format!("sha256:{hex}")) {
        Ok(d) if !hex.contains('/') => d,
        _ => return Ok(()),
    };
    // `<hex>.tar` names a diff_id, which a compressed file does not hash to; the scan checks it.
    if name.ends_with(".tar") || claimed == *got {
        return Ok(());
    }
    bail!("`{name}` has digest {got} (corrupt or tampered)")
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        return Ok(());
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// The mtime of every entry written: `SOURCE_DATE_EPOCH`, else 0.
fn epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Write `entries` (sorted by name) as a tar to a temporary file beside `file`, then rename it.
fn pack(file: &Path, entries: &BTreeMap<String, Src>) -> Result<()> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".harden-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mtime = epoch();
    let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp.as_file()));
    for (name, src) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        match src {
            Src::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, std::io::empty())?;
            }
            Src::Bytes(v) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(v.len() as u64);
                b.append_data(&mut h, name, &v[..])?;
            }
            Src::File(p) => {
                let f = std::fs::File::open(p).with_context(|| format!("{name}: cannot read {}", p.display()))?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(f.metadata()?.len());
                b.append_data(&mut h, name, f)?;
            }
        }
    }
    let mut w = b.into_inner()?;
    w.flush()?;
    drop(w);
    // A temporary file is created 0600; the archive is meant to be read (docker load, ctr
    // import) by others, as skopeo's are: 0644.
    tmp.as_file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| anyhow!("cannot replace {}: {}", file.display(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_inside_the_root() {
        assert_eq!(clean("./a//b/./c", "").as_deref(), Some("a/b/c"));
        assert_eq!(clean("../x.tar", "d").as_deref(), Some("x.tar"));
        assert_eq!(clean("/manifest.json", "d").as_deref(), Some("manifest.json"));
        assert_eq!(clean("../../x", "d"), None);
        assert_eq!(clean("..", ""), None);
        assert_eq!(clean("./", "").as_deref(), Some(""));
        assert_eq!(with_tag("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(with_tag("app:1"), "app:1");
        let d = Digest::of(b"x");
        assert!(check_claim(&format!("{}.json", d.hex()), &d).is_ok());
        assert!(check_claim(&format!("blobs/sha256/{}", d.hex()), &Digest::of(b"y")).is_err());
        assert!(check_claim("abc/layer.tar", &d).is_ok());
    }
}
