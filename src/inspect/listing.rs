//! `harden files`: an image's final filesystem — what containerd unpacks, as [`FinalFs`] models
//! it — listed entry by entry (path, type, mode, owner, size, link target, layer), as
//! `crane export | tar -tv` or dive would show it but merged, and without writing anything.
//!
//! Owns: the listing's rows, its filters and its text and JSON renderings. Must not: read
//! layers itself (the source does) or decide anything about them.

use crate::fs::{FinalFs, Loc};
use crate::layer::tar::Kind;
use crate::reference::ImageRef;
use crate::Failure;
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How `harden files` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct FilesOptions {
    pub image: ImageRef,
    pub format: Format,
    /// Only setuid or setgid non-directories.
    pub setuid: bool,
    /// Only regular files with an execute bit.
    pub executables: bool,
    /// Only paths this glob matches (`/usr/bin/*`; `*` stays within a directory, `**` crosses).
    pub glob: Option<String>,
    pub read: super::ReadOptions,
}

/// One path of the final filesystem.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    /// Absolute, as inside the container.
    pub path: String,
    /// file, dir, symlink, char, block, fifo or other (a hardlink is the type of its inode).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Permission bits with setuid, setgid and sticky, in octal (`4755`).
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    /// A regular file's size in bytes; 0 for the other types.
    pub size: u64,
    /// A symlink's target, as stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// For a file with several names (hardlinks): the first of them in path order, the same
    /// for every name of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardlink: Option<String>,
    /// The layer (0 = the base) whose entry made this path; for a directory no entry names,
    /// the layer that needed it.
    pub layer: usize,
    /// No entry names this directory: the unpacker made it (root-owned, 0755).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub implied: bool,
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File | Kind::HardLink => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::CharDev => "char",
        Kind::BlockDev => "block",
        Kind::Fifo => "fifo",
        Kind::GlobalPax | Kind::Other(_) => "other",
    }
}

/// Every path of the final filesystem, in path order.
pub fn rows(fs: &FinalFs) -> Vec<Row> {
    let mut names: HashMap<Loc, Vec<&str>> = HashMap::new();
    for (p, loc, _) in fs.iter() {
        names.entry(fs.inode(loc)).or_default().push(p);
    }
    let mut out: BTreeMap<String, Row> = BTreeMap::new();
    for (p, loc, e) in fs.iter() {
        let data = fs.inode(loc);
        let d = fs.entry(data);
        let (uid, gid, mode) = fs.inode_attrs(data);
        let kind = if e.kind == Kind::HardLink { d.kind } else { e.kind };
        // A hardlinked symlink is not one inode in a container's root: the native snapshotter
        // copies symlinks one by one (overlayfs would share it; nothing can tell).
        let group = names.get(&data).filter(|n| n.len() > 1 && kind != Kind::Symlink);
        out.insert(
            p.to_string(),
            Row {
                path: format!("/{p}"),
                kind: kind_name(kind),
                mode: format!("{:04o}", mode & 0o7777),
                uid,
                gid,
                size: if kind == Kind::File { d.size } else { 0 },
                link: (kind == Kind::Symlink).then(|| d.link().unwrap_or_default().to_string()),
                hardlink: group.and_then(|n| n.iter().min()).map(|first| format!("/{first}")),
                layer: loc.layer,
                implied: false,
            },
        );
    }
    for (p, layer) in fs.implied_dirs() {
        out.entry(p.to_string()).or_insert_with(|| Row {
            path: format!("/{p}"),
            kind: "dir",
            mode: "0755".into(),
            uid: 0,
            gid: 0,
            size: 0,
            link: None,
            hardlink: None,
            layer,
            implied: true,
        });
    }
    out.into_values().collect()
}

/// The rows `--setuid`, `--executables` and the glob keep.
pub fn filter(rows: Vec<Row>, setuid: bool, executables: bool, glob: Option<&globset::GlobMatcher>) -> Vec<Row> {
    rows.into_iter()
        .filter(|r| {
            let mode = u32::from_str_radix(&r.mode, 8).unwrap_or(0);
            (!setuid || (r.kind != "dir" && mode & 0o6000 != 0))
                && (!executables || (r.kind == "file" && mode & 0o111 != 0))
                && glob.is_none_or(|g| g.is_match(&r.path))
        })
        .collect()
}

/// A PATH-GLOB compiled: absolute or not (`usr/bin/*` is `/usr/bin/*`).
pub fn compile_glob(glob: &str) -> Result<globset::GlobMatcher, String> {
    let g = if glob.starts_with('/') { glob.to_string() } else { format!("/{glob}") };
    let g = if g.len() > 1 { g.trim_end_matches('/').to_string() } else { g };
    globset::GlobBuilder::new(&g)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("bad PATH-GLOB `{glob}`: {e}"))
}

/// `ls -l`'s mode column: `-rwsr-xr-x`.
fn mode_string(kind: &str, mode: u32) -> String {
    let t = match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "char" => 'c',
        "block" => 'b',
        "fifo" => 'p',
        "file" => '-',
        _ => '?',
    };
    let mut s = String::from(t);
    for (i, who) in [(6, 0o4000), (3, 0o2000), (0, 0o1000)] {
        let bits = (mode >> i) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        let special = mode & who != 0;
        let (on, off) = if who == 0o1000 { ('t', 'T') } else { ('s', 'S') };
        s.push(match (x, special) {
            (true, true) => on,
            (false, true) => off,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// The listing as printed: one line per path (`tar -tv` style), or the JSON document
/// `harden-files/1` (docs/reports.md).
pub fn render(format: Format, image: &ImageRef, digest: &str, rows: &[Row], notes: &[String]) -> String {
    match format {
        Format::Json => {
            let doc = serde_json::json!({
                "schema": "harden-files/1",
                "image": image.to_string(),
                "digest": digest,
                "entries": rows,
                "notes": notes,
            });
            format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
        }
        Format::Text => {
            let mut out = String::new();
            for r in rows {
                let mode = u32::from_str_radix(&r.mode, 8).unwrap_or(0);
                let owner = format!("{}:{}", r.uid, r.gid);
                let mut line =
                    format!("{} {owner:>11} {:>12} L{:<2} {}", mode_string(r.kind, mode), r.size, r.layer, r.path);
                if let Some(t) = &r.link {
                    line.push_str(&format!(" -> {t}"));
                }
                if let Some(h) = r.hardlink.as_ref().filter(|h| **h != r.path) {
                    line.push_str(&format!(" link to {h}"));
                }
                out.push_str(&line);
                out.push('\n');
            }
            out
        }
    }
}

/// `harden files IMAGE`: read the image as `check` does (an index: its first image) and list
/// its final filesystem. What containerd would refuse or change is said on `progress` and in
/// the JSON's `notes`.
pub async fn files(o: FilesOptions) -> Result<String> {
    let glob = o.glob.as_deref().map(compile_glob).transpose().map_err(Failure::Usage)?;
    let crate::source::read::ReadImage { manifest, fs, .. } =
        crate::source::read::read_first(&o.image, &o.read).await?;
    for n in &fs.unpack_notes {
        o.read.progress.line(&format!("note: {n}"));
    }
    let all = rows(&fs);
    let n = all.len();
    let shown = filter(all, o.setuid, o.executables, glob.as_ref());
    o.read.progress.line(&format!("{}: {} of {n} paths", o.image, shown.len()));
    Ok(render(o.format, &o.image, manifest.digest.as_str(), &shown, &fs.unpack_notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tests::{entry, layer};

    #[test]
    fn modes_print_as_ls_does() {
        assert_eq!(mode_string("file", 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string("dir", 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string("file", 0o2644), "-rw-r-Sr--");
    }

    #[test]
    fn rows_filters_and_globs() {
        let mut su = entry("usr/bin/su", Kind::File, None);
        su.mode = 0o4755;
        su.size = 10;
        let mut ls = entry("usr/bin/ls", Kind::File, None);
        ls.mode = 0o755;
        let fs = FinalFs::build(vec![
            layer(vec![su, ls, entry("etc/motd", Kind::File, None)]),
            layer(vec![entry("usr/bin/su2", Kind::HardLink, Some("usr/bin/su"))]),
        ]);
        let all = rows(&fs);
        let paths: Vec<&str> = all.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/etc", "/etc/motd", "/usr", "/usr/bin", "/usr/bin/ls", "/usr/bin/su", "/usr/bin/su2"]);
        assert!(all[0].implied && all[0].mode == "0755");
        let su2 = &all[6];
        // The link's chown clears setuid on the one inode both names share.
        assert_eq!((su2.kind, su2.size, su2.mode.as_str(), su2.layer), ("file", 10, "0755", 1));
        assert_eq!(all[5].hardlink.as_deref(), Some("/usr/bin/su"));
        assert_eq!(su2.hardlink.as_deref(), Some("/usr/bin/su"));
        assert_eq!(fs.unpack_notes.len(), 1, "{:?}", fs.unpack_notes);
        let g = compile_glob("usr/bin/*").unwrap();
        assert_eq!(filter(all.clone(), false, true, Some(&g)).len(), 3);
        assert_eq!(filter(all.clone(), false, false, Some(&compile_glob("/usr/*").unwrap())).len(), 1);
        assert_eq!(filter(all, true, false, None).len(), 0);
    }
}
