//! FinalFs: the filesystem a container started from the image would see — every layer's
//! headers merged in order, whiteouts and opaque directories applied — with path resolution
//! through symlinks.
//!
//! Owns: the merged view and path lookup. Must not: read file bodies (beyond the scan's prefixes).

use crate::layer::path::{join, split_parent};
use crate::layer::tar::Kind;
use crate::scan::{EntryInfo, LayerIndex};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Where a visible path comes from: layer index and entry index in that layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub layer: usize,
    pub entry: usize,
}

pub struct FinalFs {
    /// Shared: platforms of an index that share a layer share its scan.
    pub layers: Vec<Arc<LayerIndex>>,
    /// Every visible explicit entry, by the path it was written to (its parent resolved
    /// through symlinks within the root, as containerd's applier writes it). One element per
    /// entry of the image, compact: the key is the entry's own shared name unless it was placed
    /// elsewhere, the value an [`At`].
    map: BTreeMap<Arc<str>, At>,
    /// Directories no entry names but an entry needed (containerd's `mkparent` makes them,
    /// root-owned, mode 0755), with the layer that made them.
    implied: BTreeMap<Box<str>, usize>,
    /// Entries written somewhere other than their stored name (under a symlinked parent).
    placed: HashMap<Loc, String>,
    /// A hardlink entry → the entry whose inode it names (a file of this or a lower layer).
    inode_of: HashMap<Loc, Loc>,
    /// An inode's owner and mode once the hardlinks made to it are applied, when they differ
    /// from its own entry's (each link's `lchown` sets the owner and clears setuid).
    inode_attrs: HashMap<Loc, (u64, u64, u32)>,
    /// Entries stored under a symlink (of their own or a lower layer) whose target leaves the
    /// root, with that symlink's path: a naive unpacker would write them outside the root; a
    /// container runtime writes them inside it (where the map has them). Reported by the audit.
    pub through_symlink: Vec<(Loc, String)>,
    /// What containerd's applier refuses or does differently from the entry as stored (a
    /// hardlink to nothing, a parent that is a file, a bad whiteout name, a setuid bit a
    /// hardlink's chown clears), one line each naming layer and entry.
    pub unpack_notes: Vec<String>,
}

/// A [`Loc`] in 8 bytes instead of 16, as the map keeps it: the layer in the top 24 bits (a
/// manifest of 4 MiB lists fewer layers), the entry in the low 40 (a trillion entries would
/// not fit in memory anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct At(u64);

impl At {
    fn new(l: Loc) -> At {
        debug_assert!(l.layer < 1 << 24 && l.entry < 1 << 40);
        At(((l.layer as u64) << 40) | (l.entry as u64 & ((1 << 40) - 1)))
    }
    fn loc(self) -> Loc {
        Loc { layer: (self.0 >> 40) as usize, entry: (self.0 & ((1 << 40) - 1)) as usize }
    }
}

/// The elements of `map` from `prefix` on, in order (a range over boxed or shared names by `&str`).
fn from<'m, K: Borrow<str> + Ord, V>(map: &'m BTreeMap<K, V>, prefix: &str) -> impl Iterator<Item = (&'m K, &'m V)> {
    map.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
}

/// Maximum symlinks followed in one lookup (as Linux's ELOOP limit).
const MAX_HOPS: usize = 40;

/// The state of an unpacking in progress, as containerd's `applyNaive` keeps it on disk.
struct Apply<'a> {
    layers: &'a [Arc<LayerIndex>],
    map: BTreeMap<Arc<str>, At>,
    implied: BTreeMap<Box<str>, usize>,
    placed: HashMap<Loc, String>,
    inode_of: HashMap<Loc, Loc>,
    inode_attrs: HashMap<Loc, (u64, u64, u32)>,
    notes: Vec<String>,
    through_symlink: Vec<(Loc, String)>,
}

impl Apply<'_> {
    fn entry(&self, l: Loc) -> &EntryInfo {
        &self.layers[l.layer].entries[l.entry]
    }

    /// containerd's `fs.RootPath`: symlinks in `dir` followed, never out of the root.
    fn root_path(&self, dir: &str) -> Option<String> {
        resolve_in(dir, true, &|p| self.map.get(p).map(|&l| self.entry(l.loc())))
    }

    fn exists(&self, path: &str) -> bool {
        self.map.contains_key(path) || self.implied.contains_key(path)
    }

    fn is_dir(&self, path: &str) -> bool {
        self.implied.contains_key(path) || self.map.get(path).is_some_and(|&l| self.entry(l.loc()).kind == Kind::Dir)
    }

    /// `os.RemoveAll(path)`.
    fn remove_all(&mut self, path: &str) {
        self.map.remove(path);
        self.implied.remove(path);
        remove_under(&mut self.map, path);
        remove_under(&mut self.implied, path);
    }

    /// containerd's `mkparent`: every missing directory up to `dir` made; false when one of
    /// them is not a directory (the unpack fails there).
    fn mkparent(&mut self, dir: &str, layer: usize) -> bool {
        let mut end = 0;
        loop {
            let next = dir[end..].find('/').map_or(dir.len(), |i| end + i);
            let d = &dir[..next];
            if self.exists(d) {
                if !self.is_dir(d) {
                    return false;
                }
            } else {
                self.implied.insert(d.into(), layer);
            }
            if next == dir.len() {
                return true;
            }
            end = next + 1;
        }
    }

    /// An entry containerd cannot place (it refuses the layer there) is kept under its stored
    /// name, so the profile's rules still reach it: a GNU tar or bsdtar extraction writes it
    /// there, and harden must never pass on what a rule removes or strips.
    fn unplaced(&mut self, loc: Loc) {
        let path = self.entry(loc).path.clone();
        self.map.insert(path, At::new(loc));
    }

    fn note(&mut self, loc: Loc, what: String) {
        let e = self.entry(loc);
        self.notes.push(format!("layer {} entry {} (/{}): {what}", loc.layer, loc.entry, e.path));
    }

    fn layer(&mut self, li: usize) {
        let layer = self.layers[li].clone();
        // Paths this layer has written: an opaque marker keeps them (`unpackedPaths`). Kept only
        // when the layer has such a marker (on a 500k-entry layer the set was 66 MiB).
        let opaque = layer.entries.iter().any(|e| split_parent(&e.path).1 == ".wh..wh..opq");
        let mut unpacked: HashSet<String> = HashSet::new();
        for (ei, e) in layer.entries.iter().enumerate() {
            let loc = Loc { layer: li, entry: ei };
            if e.path.is_empty() {
                continue;
            }
            if let Some(link) = escaping_ancestor(&self.map, self.layers, &e.path) {
                self.through_symlink.push((loc, link));
            }
            let (dir, base) = split_parent(&e.path);
            let Some(parent) = self.root_path(dir) else {
                self.note(loc, "too many symlinks in its parent: containerd refuses the layer".into());
                self.unplaced(loc);
                continue;
            };
            let path = join(&parent, base);
            if !parent.is_empty() && !self.mkparent(&parent, li) {
                self.note(loc, format!("/{parent} is not a directory: containerd refuses the layer"));
                self.unplaced(loc);
                continue;
            }
            if let Some(hidden) = base.strip_prefix(".wh.") {
                if hidden == ".wh..opq" {
                    let prefix = if parent.is_empty() { String::new() } else { format!("{parent}/") };
                    let under = |m: &mut dyn Iterator<Item = &str>| -> Vec<String> {
                        m.take_while(|p| p.starts_with(&prefix))
                            .filter(|p| !unpacked.contains(*p))
                            .map(str::to_string)
                            .collect()
                    };
                    let mut doomed = under(&mut from(&self.map, &prefix).map(|(p, _)| &**p));
                    doomed.extend(under(&mut from(&self.implied, &prefix).map(|(p, _)| &**p)));
                    for p in doomed {
                        self.remove_all(&p);
                    }
                } else if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                    self.note(loc, "an invalid whiteout name: containerd refuses the layer".into());
                } else {
                    self.remove_all(&join(&parent, hidden));
                }
                continue;
            }
            if path.is_empty() {
                continue;
            }
            // An existing path is replaced, unless both are directories (then merged).
            if self.exists(&path) && !(self.is_dir(&path) && e.kind == Kind::Dir) {
                self.remove_all(&path);
            }
            if e.kind == Kind::HardLink {
                let target = e.link.as_deref().unwrap_or("");
                let (tdir, tbase) = split_parent(target);
                let tpath = self.root_path(tdir).map(|d| join(&d, tbase));
                match tpath.as_deref().and_then(|t| self.map.get(t).map(|a| a.loc())) {
                    Some(t) if self.entry(t).kind != Kind::Dir => {
                        let data = self.inode_of.get(&t).copied().unwrap_or(t);
                        self.inode_of.insert(loc, data);
                        let d = self.entry(data);
                        let (_, _, mode) = self.inode_attrs.get(&data).copied().unwrap_or((d.uid, d.gid, d.mode));
                        // The link's lchown: its owner, and the kernel clears setuid (and
                        // setgid on a group-executable file). Its chmod is applied only when
                        // the link name exists relative to containerd's working directory.
                        let mut after = mode;
                        if d.kind != Kind::Symlink {
                            after &= !0o4000;
                            if after & 0o010 != 0 {
                                after &= !0o2000;
                            }
                        }
                        if after != mode {
                            self.note(
                                loc,
                                format!(
                                    "its chown clears the setuid/setgid bits of /{} (mode {mode:o} -> {after:o}) \
                                     unless containerd's working directory holds {target}",
                                    tpath.as_deref().unwrap_or("")
                                ),
                            );
                        }
                        self.inode_attrs.insert(data, (e.uid, e.gid, after));
                    }
                    Some(_) => {
                        self.note(loc, format!("a hardlink to the directory /{target}: containerd refuses the layer"));
                        continue;
                    }
                    None => {
                        self.note(
                            loc,
                            format!("a hardlink to /{target}, which does not exist: containerd refuses the layer"),
                        );
                        continue;
                    }
                }
            }
            if *path != *e.path {
                // The scan keeps a file's first bytes by its stored name: placed where they
                // matter (an account database), they were not read.
                if e.kind == Kind::File && e.prefix.is_none() && crate::scan::prefix_len(&path, e.mode, e.size) > 0 {
                    self.note(
                        loc,
                        format!("written through a symlinked parent to /{path}, whose contents harden did not read"),
                    );
                }
                self.placed.insert(loc, path.clone());
            }
            self.implied.remove(path.as_str());
            if opaque {
                unpacked.insert(path.clone());
            }
            // The entry's own name when written where it is stored (nearly always): shared.
            let key = if *path == *e.path { e.path.clone() } else { path.into() };
            self.map.insert(key, At::new(loc));
        }
    }
}

impl FinalFs {
    /// The layers applied in order as containerd's applier does (`archive.Apply`, native
    /// snapshotter): each entry in stream order, its parent resolved through symlinks within
    /// the root; `.wh.NAME` removes NAME, `.wh..wh..opq` what lower layers hold under its
    /// directory; an entry replaces what is there unless both are directories; a hardlink
    /// names the inode its target has at that moment.
    pub fn build<L: Into<Arc<LayerIndex>>>(layers: Vec<L>) -> FinalFs {
        let layers: Vec<Arc<LayerIndex>> = layers.into_iter().map(Into::into).collect();
        let mut a = Apply {
            layers: &layers,
            map: BTreeMap::new(),
            implied: BTreeMap::new(),
            placed: HashMap::new(),
            inode_of: HashMap::new(),
            inode_attrs: HashMap::new(),
            notes: Vec::new(),
            through_symlink: Vec::new(),
        };
        for li in 0..layers.len() {
            a.layer(li);
        }
        let Apply { map, implied, placed, inode_of, inode_attrs, notes, through_symlink, .. } = a;
        FinalFs { map, implied, placed, inode_of, inode_attrs, through_symlink, unpack_notes: notes, layers }
    }

    /// Where an entry was written: its stored name, or (under a symlinked parent) the path
    /// its parent resolves to.
    pub fn placed_path(&self, loc: Loc) -> &str {
        self.placed.get(&loc).map_or(&*self.entry(loc).path, String::as_str)
    }

    /// The entry holding the inode a visible entry names: itself, or for a hardlink the
    /// entry it links to (followed through links of links).
    pub fn inode(&self, loc: Loc) -> Loc {
        self.inode_of.get(&loc).copied().unwrap_or(loc)
    }

    /// An inode's (uid, gid, mode) as unpacked: its entry's, or as the hardlinks made to it
    /// left them.
    pub fn inode_attrs(&self, data: Loc) -> (u64, u64, u32) {
        let e = self.entry(data);
        self.inode_attrs.get(&data).copied().unwrap_or((e.uid, e.gid, e.mode))
    }

    /// Directories that no entry names but that the unpacking makes, with the layer making them.
    pub fn implied_dirs(&self) -> impl Iterator<Item = (&str, usize)> {
        self.implied.iter().map(|(p, &l)| (&**p, l))
    }

    pub fn entry(&self, loc: Loc) -> &EntryInfo {
        &self.layers[loc.layer].entries[loc.entry]
    }

    /// The entry at exactly this (normalised, canonical) path.
    pub fn get(&self, path: &str) -> Option<(Loc, &EntryInfo)> {
        self.map.get(path).map(|&l| (l.loc(), self.entry(l.loc())))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Loc, &EntryInfo)> {
        self.map.iter().map(|(p, &l)| (&**p, l.loc(), self.entry(l.loc())))
    }

    /// Resolve `path` (absolute or relative to the root) to a canonical path, following
    /// symlinks in every component, and in the last one too when `follow_last`. Returns the
    /// canonical path even if nothing exists there; None on a loop or an escape attempt
    /// that cannot be resolved.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Option<String> {
        self.resolve_with(path, follow_last, &|p| self.get(p).map(|(_, e)| e))
    }

    /// As [`resolve`](Self::resolve), over any lookup (the plan resolves against the view
    /// after removals).
    pub fn resolve_with<'a>(
        &self,
        path: &str,
        follow_last: bool,
        lookup: &dyn Fn(&str) -> Option<&'a EntryInfo>,
    ) -> Option<String> {
        resolve_in(path, follow_last, lookup)
    }

    /// Directory symlinks of the final image as (link path, canonical target dir), e.g.
    /// ("bin", "usr/bin") on usr-merged Debian: a rule for `/bin/sh` must also match `usr/bin/sh`.
    pub fn dir_aliases(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (p, _, e) in self.iter() {
            if e.kind != Kind::Symlink {
                continue;
            }
            if let Some(t) = self.resolve(p, true) {
                if t != p && self.is_dir(&t) {
                    out.push((p.to_string(), t));
                }
            }
        }
        out
    }

    /// A directory entry, or a path with entries under it (layers may omit directory entries).
    pub fn is_dir(&self, path: &str) -> bool {
        if let Some((_, e)) = self.get(path) {
            return e.kind == Kind::Dir;
        }
        if self.implied.contains_key(path) {
            return true;
        }
        let prefix = format!("{path}/");
        from(&self.map, &prefix).next().is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    /// The contents the scan kept for a file (full for account files, a prefix otherwise).
    pub fn prefix(&self, path: &str) -> Option<&[u8]> {
        let canon = self.resolve(path, true)?;
        self.get(&canon).and_then(|(_, e)| e.prefix.as_deref())
    }
}

/// Resolve `path` within the root over `lookup` (see [`FinalFs::resolve`]).
pub fn resolve_in<'a>(path: &str, follow_last: bool, lookup: &dyn Fn(&str) -> Option<&'a EntryInfo>) -> Option<String> {
    let mut todo: Vec<String> = path.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect();
    todo.reverse();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(c);
        let last = todo.is_empty();
        let p = cur.join("/");
        if let Some(e) = lookup(&p) {
            if e.kind == Kind::Symlink && (!last || follow_last) {
                hops += 1;
                if hops > MAX_HOPS {
                    return None;
                }
                let target = e.link.clone().unwrap_or_default();
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                let mut parts: Vec<String> = target.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect();
                parts.reverse();
                todo.extend(parts);
            }
        }
    }
    Some(cur.join("/"))
}

/// The first directory above `path` that is, at this point of the unpacking, a symlink whose
/// target leaves the root (absolute, or more `..` than it is deep).
fn escaping_ancestor(map: &BTreeMap<Arc<str>, At>, layers: &[Arc<LayerIndex>], path: &str) -> Option<String> {
    let mut end = 0;
    while let Some(i) = path[end..].find('/') {
        let dir = &path[..end + i];
        end += i + 1;
        let Some(loc) = map.get(dir).map(|a| a.loc()) else { continue };
        let e = &layers[loc.layer].entries[loc.entry];
        if e.kind == Kind::Symlink && e.link.as_deref().is_some_and(|t| link_leaves_root(dir, t)) {
            return Some(dir.to_string());
        }
    }
    None
}

/// Whether a symlink at `link_path` to `target` points outside the root when taken literally
/// (as an unpacker on the host would): absolute, or climbing above the root with `..`.
pub fn link_leaves_root(link_path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth = split_parent(link_path).0.split('/').filter(|c| !c.is_empty()).count() as i64;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn remove_under<K: Borrow<str> + Ord + Clone, V>(map: &mut BTreeMap<K, V>, dir: &str) {
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    let doomed: Vec<K> =
        from(map, &prefix).take_while(|(p, _)| (*p).borrow().starts_with(&prefix)).map(|(p, _)| p.clone()).collect();
    for p in doomed {
        map.remove(p.borrow());
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::layer::codec::Codec;

    pub fn entry(path: &str, kind: Kind, link: Option<&str>) -> EntryInfo {
        EntryInfo {
            path: path.into(),
            kind,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: 0,
            link: link.map(Into::into),
            caps: false,
            escapes: false,
            prefix: None,
            elf: None,
            busybox: false,
        }
    }

    pub fn layer(entries: Vec<EntryInfo>) -> LayerIndex {
        LayerIndex { entries, codec: Codec::None, diff_id: Digest::of(b""), uncompressed_size: 0 }
    }

    /// The merged view of a layer of many entries costs a bounded number of bytes per entry,
    /// at its peak too (measured with the unit tests' counting allocator): its map's element, an
    /// 8-byte location keyed by the entry's own shared name. It was 40-byte elements keyed by a
    /// copy of the name, and a second copy of every name in a set kept for opaque markers.
    #[test]
    fn the_merged_view_costs_bounded_bytes_per_entry() {
        let n = 100_000;
        let entries = (0..n)
            .map(|i| entry(&format!("opt/many/d{:05}/file-{i:07}.txt", i / 500), Kind::File, None))
            .collect::<Vec<_>>();
        let l = layer(entries);
        let start = crate::memory::counting::start();
        let fs = FinalFs::build(vec![l]);
        let (live, peak) = crate::memory::counting::since(start);
        assert_eq!((fs.iter().count(), fs.implied_dirs().count()), (n, 202), "opt, opt/many, 200 d*: implied");
        let (per_live, per_peak) = (live / n as i64, peak / n as i64);
        eprintln!("merged view: {live} bytes live, {peak} at peak: {per_live} and {per_peak} per entry");
        assert!(per_live <= 56 && per_peak <= 56, "{per_live} / {per_peak} bytes per entry");
    }

    #[test]
    fn whiteouts_and_opaque_dirs_apply() {
        let l0 = layer(vec![
            entry("etc", Kind::Dir, None),
            entry("etc/a", Kind::File, None),
            entry("etc/b", Kind::File, None),
            entry("opt", Kind::Dir, None),
            entry("opt/x", Kind::File, None),
        ]);
        let l1 = layer(vec![
            entry("etc/.wh.a", Kind::File, None),
            entry("opt/.wh..wh..opq", Kind::File, None),
            entry("opt/y", Kind::File, None),
        ]);
        let fs = FinalFs::build(vec![l0, l1]);
        assert!(fs.get("etc/a").is_none());
        assert!(fs.get("etc/b").is_some());
        assert!(fs.get("opt/x").is_none());
        assert_eq!(fs.get("opt/y").unwrap().0.layer, 1);
        assert!(fs.get("opt/.wh..wh..opq").is_none());
    }

    #[test]
    fn symlinks_out_of_the_root_are_flagged_and_never_followed_out() {
        let fs = FinalFs::build(vec![
            layer(vec![
                entry("etc", Kind::Dir, None),
                entry("etc/passwd", Kind::File, None),
                entry("evil", Kind::Symlink, Some("../../../../etc")),
                entry("abs", Kind::Symlink, Some("/etc")),
                entry("ok", Kind::Symlink, Some("etc")),
                // Written through the symlinks, in the same layer.
                entry("evil/shadow", Kind::File, None),
                entry("ok/hosts", Kind::File, None),
            ]),
            // ...and through one of a lower layer.
            layer(vec![entry("abs/cron", Kind::File, None)]),
        ]);
        let flagged: Vec<(usize, &str, &str)> =
            fs.through_symlink.iter().map(|(l, s)| (l.layer, &*fs.entry(*l).path, s.as_str())).collect();
        assert_eq!(flagged, vec![(0, "evil/shadow", "evil"), (1, "abs/cron", "abs")]);
        // Resolution clamps `..` at the root: the plan and the guard stay inside.
        assert_eq!(fs.resolve("/evil/passwd", true).unwrap(), "etc/passwd");
        assert_eq!(fs.resolve("evil/../../../../../etc/passwd", true).unwrap(), "etc/passwd");
        assert_eq!(fs.resolve("/abs/passwd", true).unwrap(), "etc/passwd");
        assert!(link_leaves_root("a/b", "../../x"));
        assert!(!link_leaves_root("a/b", "../x"));
        assert!(link_leaves_root("a", "/x"));
        assert!(!link_leaves_root("usr/bin/sh", "dash"));
    }

    #[test]
    fn duplicate_entries_the_later_one_wins() {
        let mut first = entry("etc/motd", Kind::File, None);
        first.mode = 0o4755;
        let mut second = entry("etc/motd", Kind::File, None);
        second.mode = 0o644;
        let fs = FinalFs::build(vec![layer(vec![first, entry("etc/x", Kind::Dir, None), second])]);
        let (loc, e) = fs.get("etc/motd").unwrap();
        assert_eq!((loc.entry, e.mode), (2, 0o644), "as tar extraction does: the last one stays");
    }

    #[test]
    fn layers_apply_in_stream_order_as_containerd_does() {
        let mut data = entry("usr/bin/tool", Kind::File, None);
        data.size = 7;
        let l0 = layer(vec![
            entry("usr/bin", Kind::Dir, None),
            data,
            entry("bin", Kind::Symlink, Some("usr/bin")),
            entry("opt", Kind::Dir, None),
            entry("opt/old", Kind::File, None),
        ]);
        let mut newer = entry("usr/bin/tool", Kind::File, None);
        newer.size = 99;
        let l1 = layer(vec![
            // Under a symlinked parent: written where the link leads.
            entry("bin/new", Kind::File, None),
            // A hardlink names the inode, not the path.
            entry("keep/t2", Kind::HardLink, Some("bin/tool")),
            newer,
            // The layer's own path survives its opaque marker; a whiteout after an entry removes it.
            entry("opt/mine", Kind::File, None),
            entry("opt/.wh..wh..opq", Kind::File, None),
            entry("etc/c", Kind::File, None),
            entry("etc/.wh.c", Kind::File, None),
            entry("deep/a/b", Kind::File, None),
        ]);
        let l2 = layer(vec![entry(".wh.bin", Kind::File, None), entry("deep/a/.wh.b", Kind::File, None)]);
        let fs = FinalFs::build(vec![l0, l1, l2]);
        let (loc, _) = fs.get("usr/bin/new").expect("placed through the symlink");
        assert_eq!(fs.placed_path(loc), "usr/bin/new");
        assert!(fs.get("bin").is_none() && fs.get("bin/new").is_none());
        let (t2, _) = fs.get("keep/t2").unwrap();
        assert_eq!(fs.entry(fs.inode(t2)).size, 7, "the link keeps the first tool's inode");
        assert_eq!(fs.get("usr/bin/tool").unwrap().1.size, 99);
        assert!(fs.get("opt/mine").is_some() && fs.get("opt/old").is_none());
        assert!(fs.get("etc/c").is_none());
        let implied: Vec<(&str, usize)> = fs.implied_dirs().collect();
        assert_eq!(implied, [("deep", 1), ("deep/a", 1), ("etc", 1), ("keep", 1), ("usr", 0)]);
        assert!(fs.is_dir("deep/a") && fs.unpack_notes.is_empty(), "{:?}", fs.unpack_notes);
    }

    #[test]
    fn what_containerd_refuses_is_noted() {
        let fs = FinalFs::build(vec![layer(vec![
            entry("f", Kind::File, None),
            entry("f/under", Kind::File, None),
            entry("l", Kind::HardLink, Some("nothing")),
            entry("d/.wh..", Kind::File, None),
        ])]);
        assert_eq!(fs.unpack_notes.len(), 3, "{:?}", fs.unpack_notes);
        assert!(fs.get("l").is_none());
        // What containerd cannot place stays under its stored name, for the profile's rules.
        assert_eq!(fs.iter().find(|(p, _, _)| *p == "f/under").map(|(_, l, _)| l.entry), Some(1));
    }

    #[test]
    fn resolves_usr_merge_symlinks() {
        let fs = FinalFs::build(vec![layer(vec![
            entry("bin", Kind::Symlink, Some("usr/bin")),
            entry("usr", Kind::Dir, None),
            entry("usr/bin", Kind::Dir, None),
            entry("usr/bin/dash", Kind::File, None),
            entry("usr/bin/sh", Kind::Symlink, Some("dash")),
            entry("loop", Kind::Symlink, Some("/loop")),
        ])]);
        assert_eq!(fs.resolve("/bin/sh", false).unwrap(), "usr/bin/sh");
        assert_eq!(fs.resolve("/bin/sh", true).unwrap(), "usr/bin/dash");
        assert_eq!(fs.resolve("/bin/../etc", true).unwrap(), "usr/etc");
        assert!(fs.resolve("/loop/x", true).is_none());
        assert_eq!(fs.dir_aliases(), vec![("bin".to_string(), "usr/bin".to_string())]);
    }
}
