//! The one read path of the read-only commands (`check`, `contract`, `sbom`, `files`, and any
//! later one): open the reference's endpoint → walk what it names → choose the images (every
//! image of an index, its first, or exactly one) → fetch and scan each into its final
//! filesystem, one image at a time so only one [`FinalFs`] is held at once.
//!
//! Owns: which images of a reference a read-only command reads, and in what order. Must not:
//! judge or render what it read (the command does), or write anything but the run's spool.

use super::{walk, ScanShare, Scanner};
use crate::fs::FinalFs;
use crate::image::ManifestView;
use crate::progress::Progress;
use crate::reference::ImageRef;
use crate::transport::{Endpoint, Manifest, NetOptions};
use crate::Failure;
use anyhow::Result;
use serde_json::Value;

/// How a read-only command reads: the transport, the scan's parallelism and limits, progress.
#[derive(Clone)]
pub struct ReadOptions {
    /// Layers scanned at once.
    pub jobs: usize,
    pub net: NetOptions,
    /// What reading a layer may cost (as for rebuild).
    pub limits: crate::layer::Limits,
    pub progress: Progress,
}

/// Which images of an index a command reads (an image manifest is always read itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choose {
    /// Every image of the index, in index order (attestation manifests are not images;
    /// nested indexes are followed by the one walk).
    Every,
    /// The index's first image, said on the progress line.
    First,
    /// Exactly one image: an index is a usage error listing its images by digest.
    One,
}

/// One image as read: its reference (by digest for an index's image), manifest, manifest view,
/// config and final filesystem.
pub struct ReadImage {
    pub r: ImageRef,
    pub manifest: Manifest,
    pub view: ManifestView,
    pub config: Value,
    pub fs: FinalFs,
    /// The platform its index entry states (`os`, `architecture`, `variant`), for an index's image.
    pub platform: Option<Value>,
}

/// The chosen images of a reference, read one by one with [`Images::next`].
pub struct Images {
    src: Endpoint,
    share: ScanShare,
    chosen: std::vec::IntoIter<Chosen>,
    o: ReadOptions,
}

enum Chosen {
    /// The reference's own manifest, already fetched by the walk.
    Top(ImageRef, Manifest),
    /// An image of the index, fetched (size checked against its descriptor) when read.
    Entry(ImageRef, walk::Entry),
}

/// Open `image`, walk it and choose its images as `choose` says. Nothing is scanned yet.
pub async fn read_images(image: &ImageRef, choose: Choose, o: &ReadOptions) -> Result<Images> {
    let src = Endpoint::open(image, &o.net)?;
    let share = ScanShare::new()?;
    let w = walk::walk(&src, image).await?;
    let chosen = if w.index.is_none() {
        vec![Chosen::Top(image.clone(), w.top)]
    } else {
        let mut images = w.entries.into_iter().filter(|e| e.kind == walk::EntryKind::Image);
        match choose {
            Choose::Every => images.map(|e| Chosen::Entry(image.clone(), e)).collect(),
            Choose::First => {
                let e = images.next().ok_or_else(|| anyhow::anyhow!("{image}: the index lists no image"))?;
                o.progress.line(&format!("{image}: an index; its first image, {}", e.platform()));
                vec![Chosen::Entry(image.clone(), e)]
            }
            Choose::One => {
                let platforms: Vec<String> = images.map(|e| image.with_digest(&e.digest).to_string()).collect();
                return Err(Failure::Usage(format!(
                    "{image} is a multi-platform index: name one platform by digest ({})",
                    platforms.join(", ")
                ))
                .into());
            }
        }
    };
    Ok(Images { src, share, chosen: chosen.into_iter(), o: o.clone() })
}

impl Images {
    /// The endpoint read from (for look-ups beside the image, such as its signatures).
    pub fn src(&self) -> &Endpoint {
        &self.src
    }

    /// The next chosen image, fetched and scanned; `None` when all were read.
    pub async fn next(&mut self) -> Option<Result<ReadImage>> {
        let chosen = self.chosen.next()?;
        Some(self.read(chosen).await)
    }

    async fn read(&self, chosen: Chosen) -> Result<ReadImage> {
        let (r, manifest, platform) = match chosen {
            Chosen::Top(r, m) => (r, m, None),
            Chosen::Entry(image, e) => {
                let m = e.fetch(&self.src, &image).await?;
                (image.with_digest(&e.digest), m, e.descriptor.get("platform").cloned())
            }
        };
        let scanner = Scanner {
            src: &self.src,
            share: &self.share,
            jobs: self.o.jobs,
            progress: &self.o.progress,
            limits: &self.o.limits,
            mirror_to: None,
            stop_mirroring: None,
            hash_executables: false,
        };
        let (view, config, fs) = scanner.read(&r, &manifest).await?;
        Ok(ReadImage { r, manifest, view, config, fs, platform })
    }
}

/// The one image `image` names, or for an index its first (as `contract` and `files` read).
pub async fn read_first(image: &ImageRef, o: &ReadOptions) -> Result<ReadImage> {
    let mut images = read_images(image, Choose::First, o).await?;
    images.next().await.unwrap_or_else(|| Err(anyhow::anyhow!("{image}: no image to read")))
}

/// Exactly the one image `image` names (as `sbom` reads); an index is a usage error.
pub async fn read_one(image: &ImageRef, o: &ReadOptions) -> Result<ReadImage> {
    let mut images = read_images(image, Choose::One, o).await?;
    images.next().await.unwrap_or_else(|| Err(anyhow::anyhow!("{image}: no image to read")))
}
