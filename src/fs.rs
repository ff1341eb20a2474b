//! FinalFs: the filesystem a container started from the image would see — every layer's
//! headers merged in order, whiteouts and opaque directories applied — with path resolution
//! through symlinks.
//!
//! Owns: the merged view and path lookup. Must not: read file bodies (beyond the scan's prefixes).

use crate::layer::path::{join, split_parent};
use crate::layer::tar::Kind;
use crate::scan::{Entry, LayerIndex};
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
    /// through symlinks within the root, as containerd's applier writes it): an [`At`] each,
    /// sorted by that path (the entry's own name, or its `placed` one).
    map: Sorted,
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
    /// [`FinalFs::dir_aliases`], found once: every plan pass and audit check asks.
    aliases: std::sync::OnceLock<Vec<(String, String)>>,
    /// Directories [`FinalFs::resolve`] has walked: where each ended and the symlinks taken
    /// (none: too many). A few thousand at most, those of the paths the stages ask about.
    walked: std::sync::Mutex<HashMap<Box<str>, Walked>>,
}

/// Where a directory's walk ended and the symlinks it took (None: too many).
type Walked = Option<(String, usize)>;

/// A [`Loc`] in 8 bytes instead of 16, as the merged view keeps it: the layer in the top 24
/// bits (a manifest of 4 MiB lists fewer layers), whether the entry was placed elsewhere than
/// its stored name (its path is then in `placed`) in the next, the entry in the low 39 (half a
/// trillion entries would not fit in memory anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct At(u64);

const ENTRY_BITS: u32 = 39;
const PLACED: u64 = 1 << ENTRY_BITS;

impl At {
    fn new(l: Loc, placed: bool) -> At {
        debug_assert!(l.layer < 1 << 24 && l.entry < 1 << ENTRY_BITS);
        At(((l.layer as u64) << 40) | if placed { PLACED } else { 0 } | (l.entry as u64 & (PLACED - 1)))
    }
    fn loc(self) -> Loc {
        Loc { layer: (self.0 >> 40) as usize, entry: (self.0 & (PLACED - 1)) as usize }
    }
}

/// What an [`At`]'s path is: its entry's name, or the path it was placed at.
#[derive(Clone, Copy)]
struct Keys<'a> {
    layers: &'a [Arc<LayerIndex>],
    placed: &'a HashMap<Loc, String>,
}

impl<'a> Keys<'a> {
    fn of(self, a: At) -> &'a str {
        let l = a.loc();
        if a.0 & PLACED != 0 {
            if let Some(p) = self.placed.get(&l) {
                return p;
            }
        }
        self.layers[l.layer].entries.name(l.entry)
    }
}

/// The merged view's index: [`At`]s sorted by their paths ([`Keys`]), in blocks of at most
/// [`BLOCK`] (a B-tree of one level, whose keys live in the scan's index): 8 bytes an entry
/// when the layers come sorted (each block filled before the next starts), at most 16
/// otherwise. A `BTreeMap` keyed by the shared names cost about 50.
#[derive(Default)]
struct Sorted {
    blocks: Vec<Vec<At>>,
}

/// Elements a block of [`Sorted`] holds at most (4 KiB): an insertion moves half of one.
const BLOCK: usize = 512;

impl Sorted {
    /// Where `path` is or would go: (block, position, found).
    fn find(&self, k: Keys, path: &str) -> (usize, usize, bool) {
        let bi = self.blocks.partition_point(|b| b.last().is_some_and(|&a| k.of(a) < path));
        if bi == self.blocks.len() {
            let last = self.blocks.len().saturating_sub(1);
            return (last, self.blocks.get(last).map_or(0, Vec::len), false);
        }
        match self.blocks[bi].binary_search_by(|&a| k.of(a).cmp(path)) {
            Ok(i) => (bi, i, true),
            Err(i) => (bi, i, false),
        }
    }

    fn get(&self, k: Keys, path: &str) -> Option<At> {
        match self.find(k, path) {
            (b, i, true) => Some(self.blocks[b][i]),
            _ => None,
        }
    }

    /// Put `a` at `path` (`k.of(a)` is `path`), replacing what was there. A run of paths
    /// inserted in order (a sorted layer, also between two paths of lower layers) fills each
    /// block before the next starts.
    fn insert(&mut self, k: Keys, path: &str, a: At) {
        let (b, i, found) = self.find(k, path);
        if found {
            self.blocks[b][i] = a;
            return;
        }
        if self.blocks.is_empty() {
            self.blocks.push(Vec::with_capacity(BLOCK));
        }
        if self.blocks[b].len() < BLOCK {
            self.blocks[b].insert(i, a);
            return;
        }
        // A full block. Before its first element: the previous block ends below `path` (as
        // `find` chose this one), so `a` may end it when it has room.
        if i == 0 && b > 0 && self.blocks[b - 1].len() < BLOCK {
            self.blocks[b - 1].push(a);
            return;
        }
        let block = &mut self.blocks[b];
        if i == BLOCK {
            // Past a full block's end (a sorted layer, or its run between two paths of lower
            // layers): a new block after it, the full one stays full.
            let mut next = Vec::with_capacity(BLOCK);
            next.push(a);
            self.blocks.insert(b + 1, next);
        } else if i >= BLOCK / 2 {
            // In its upper half: split where `a` goes, which ends the lower block. The next path
            // of a run lands before the upper block's first element, at the lower block's end
            // (above), and the lower block fills (a split in the middle left every block of a
            // run half empty).
            let mut tail = Vec::with_capacity(BLOCK);
            tail.extend(block.drain(i..));
            block.push(a);
            self.blocks.insert(b + 1, tail);
        } else {
            let mut tail = Vec::with_capacity(BLOCK);
            tail.extend(block.drain(BLOCK / 2..));
            block.insert(i, a);
            self.blocks.insert(b + 1, tail);
        }
    }

    fn remove(&mut self, k: Keys, path: &str) {
        if let (b, i, true) = self.find(k, path) {
            self.blocks[b].remove(i);
            if self.blocks[b].is_empty() {
                self.blocks.remove(b);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = At> + '_ {
        self.blocks.iter().flatten().copied()
    }

    /// The elements from `path` on, in order.
    fn from<'s>(&'s self, k: Keys, path: &str) -> impl Iterator<Item = At> + 's {
        let (b, i, _) = self.find(k, path);
        let first = self.blocks.get(b).map_or(&[][..], |x| &x[i.min(x.len())..]);
        first.iter().chain(self.blocks.iter().skip(b + 1).flatten()).copied()
    }

    /// Remove every path under `dir` (`dir/…`; everything when `dir` is the root).
    fn remove_under(&mut self, k: Keys, dir: &str) {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let doomed: Vec<At> = self.from(k, &prefix).take_while(|&a| k.of(a).starts_with(&prefix)).collect();
        for a in doomed {
            self.remove(k, k.of(a));
        }
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
    map: Sorted,
    implied: BTreeMap<Box<str>, usize>,
    placed: HashMap<Loc, String>,
    inode_of: HashMap<Loc, Loc>,
    inode_attrs: HashMap<Loc, (u64, u64, u32)>,
    notes: Vec<String>,
    through_symlink: Vec<(Loc, String)>,
    /// The last entry's directory as [`Apply::layer`] placed it, while nothing could have
    /// changed that: entries of one directory come one after another in a layer, and only a
    /// symlink (or hardlink) added or a path removed changes how a directory resolves, so the
    /// next entry of the same directory skips resolving, creating and checking it again.
    memo: Option<ParentMemo>,
    /// Whether to keep [`Apply::memo`] (the tests compare the view with and without it).
    remember: bool,
}

/// A directory of a layer's entries: where it was placed (`root_path`, its missing parents
/// made) and the escaping symlink above it, if any.
struct ParentMemo {
    dir: String,
    parent: String,
    escaping: Option<String>,
}

impl<'a> Apply<'a> {
    fn entry(&self, l: Loc) -> Entry<'a> {
        self.layers[l.layer].entries.at(l.entry)
    }

    fn keys(&self) -> Keys<'_> {
        Keys { layers: self.layers, placed: &self.placed }
    }

    fn get(&self, path: &str) -> Option<At> {
        self.map.get(self.keys(), path)
    }

    /// containerd's `fs.RootPath`: symlinks in `dir` followed, never out of the root.
    fn root_path(&self, dir: &str) -> Option<String> {
        resolve_in(dir, true, &|p| self.get(p).map(|l| self.entry(l.loc())))
    }

    fn exists(&self, path: &str) -> bool {
        self.implied.contains_key(path) || self.get(path).is_some()
    }

    fn is_dir(&self, path: &str) -> bool {
        self.implied.contains_key(path) || self.get(path).is_some_and(|l| self.entry(l.loc()).kind == Kind::Dir)
    }

    /// `os.RemoveAll(path)`.
    fn remove_all(&mut self, path: &str) {
        self.memo = None;
        let k = Keys { layers: self.layers, placed: &self.placed };
        self.map.remove(k, path);
        self.map.remove_under(k, path);
        self.implied.remove(path);
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
        self.memo = None;
        let k = Keys { layers: self.layers, placed: &self.placed };
        self.map.insert(k, self.layers[loc.layer].entries.name(loc.entry), At::new(loc, false));
    }

    fn note(&mut self, loc: Loc, what: String) {
        let e = self.entry(loc);
        self.notes.push(format!("layer {} entry {} (/{}): {what}", loc.layer, loc.entry, e.path));
    }

    fn layer(&mut self, li: usize) {
        let layer = self.layers[li].clone();
        // Paths this layer has written: an opaque marker keeps them (`unpackedPaths`). Kept only
        // when the layer has such a marker (on a 500k-entry layer the set was 66 MiB).
        let opaque = layer.entries.names().any(|p| split_parent(p).1 == ".wh..wh..opq");
        let mut unpacked: HashSet<String> = HashSet::new();
        for (ei, e) in layer.entries.iter().enumerate() {
            let loc = Loc { layer: li, entry: ei };
            if e.path.is_empty() {
                continue;
            }
            let (dir, base) = split_parent(e.path);
            let parent = match self.memo.as_ref().filter(|m| m.dir == dir) {
                Some(m) => {
                    if let Some(link) = &m.escaping {
                        self.through_symlink.push((loc, link.clone()));
                    }
                    m.parent.clone()
                }
                None => {
                    let escaping = escaping_ancestor(&self.map, self.keys(), e.path);
                    if let Some(link) = &escaping {
                        self.through_symlink.push((loc, link.clone()));
                    }
                    let Some(parent) = self.root_path(dir) else {
                        self.note(loc, "too many symlinks in its parent: containerd refuses the layer".into());
                        self.unplaced(loc);
                        continue;
                    };
                    if !parent.is_empty() && !self.mkparent(&parent, li) {
                        self.note(loc, format!("/{parent} is not a directory: containerd refuses the layer"));
                        self.unplaced(loc);
                        continue;
                    }
                    if self.remember {
                        self.memo = Some(ParentMemo { dir: dir.to_string(), parent: parent.clone(), escaping });
                    }
                    parent
                }
            };
            let path = join(&parent, base);
            if let Some(hidden) = base.strip_prefix(".wh.") {
                if hidden == ".wh..opq" {
                    let prefix = if parent.is_empty() { String::new() } else { format!("{parent}/") };
                    let under = |m: &mut dyn Iterator<Item = &str>| -> Vec<String> {
                        m.take_while(|p| p.starts_with(&prefix))
                            .filter(|p| !unpacked.contains(*p))
                            .map(str::to_string)
                            .collect()
                    };
                    let k = self.keys();
                    let mut doomed = under(&mut self.map.from(k, &prefix).map(|a| k.of(a)));
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
                let target = e.link().unwrap_or("");
                let (tdir, tbase) = split_parent(target);
                let tpath = self.root_path(tdir).map(|d| join(&d, tbase));
                match tpath.as_deref().and_then(|t| self.get(t).map(|a| a.loc())) {
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
                if e.kind == Kind::File && e.prefix().is_none() && crate::scan::prefix_len(&path, e.mode, e.size) > 0 {
                    self.note(
                        loc,
                        format!("written through a symlinked parent to /{path}, whose contents harden did not read"),
                    );
                }
                self.placed.insert(loc, path.clone());
            }
            self.implied.remove(path.as_str());
            if matches!(e.kind, Kind::Symlink | Kind::HardLink) {
                self.memo = None;
            }
            let at = At::new(loc, *path != *e.path);
            self.map.insert(Keys { layers: self.layers, placed: &self.placed }, &path, at);
            if opaque {
                unpacked.insert(path);
            }
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
        Self::build_with(layers, true)
    }

    fn build_with<L: Into<Arc<LayerIndex>>>(layers: Vec<L>, remember: bool) -> FinalFs {
        let layers: Vec<Arc<LayerIndex>> = layers.into_iter().map(Into::into).collect();
        let mut a = Apply {
            layers: &layers,
            map: Sorted::default(),
            implied: BTreeMap::new(),
            placed: HashMap::new(),
            inode_of: HashMap::new(),
            inode_attrs: HashMap::new(),
            notes: Vec::new(),
            through_symlink: Vec::new(),
            memo: None,
            remember,
        };
        for li in 0..layers.len() {
            a.layer(li);
        }
        let Apply { map, implied, placed, inode_of, inode_attrs, notes, through_symlink, .. } = a;
        FinalFs {
            map,
            implied,
            placed,
            inode_of,
            inode_attrs,
            through_symlink,
            unpack_notes: notes,
            layers,
            aliases: Default::default(),
            walked: Default::default(),
        }
    }

    /// Where an entry was written: its stored name, or (under a symlinked parent) the path
    /// its parent resolves to.
    pub fn placed_path(&self, loc: Loc) -> &str {
        self.placed.get(&loc).map_or(self.entry(loc).path, String::as_str)
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

    pub fn entry(&self, loc: Loc) -> Entry<'_> {
        self.layers[loc.layer].entries.at(loc.entry)
    }

    /// The entry at exactly this (normalised, canonical) path.
    pub fn get(&self, path: &str) -> Option<(Loc, Entry<'_>)> {
        self.map.get(self.keys(), path).map(|l| (l.loc(), self.entry(l.loc())))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Loc, Entry<'_>)> {
        let k = self.keys();
        self.map.iter().map(move |a| (k.of(a), a.loc(), self.entry(a.loc())))
    }

    fn keys(&self) -> Keys<'_> {
        Keys { layers: &self.layers, placed: &self.placed }
    }

    /// Resolve `path` (absolute or relative to the root) to a canonical path, following
    /// symlinks in every component, and in the last one too when `follow_last`. Returns the
    /// canonical path even if nothing exists there; None on a loop or an escape attempt
    /// that cannot be resolved.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Option<String> {
        let lookup = |p: &str| self.get(p).map(|(_, e)| e);
        // A path's walk is its directory's walk, then its last name from where that ended: the
        // directory's is remembered, as the plan and the audit resolve every file of every
        // package, a few thousand directories' worth, several times.
        match split_parent(path) {
            (dir, base) if !dir.is_empty() && !matches!(base, "" | "." | "..") => {
                let (cur, hops) = self.walked_dir(dir, &lookup)?;
                walk(vec![base], cur, hops, follow_last, &lookup).map(|(p, _)| p)
            }
            _ => resolve_in(path, follow_last, &lookup),
        }
    }

    /// `dir` walked as [`resolve`](Self::resolve) walks a path's directory (every symlink
    /// followed): where it ends and the symlinks it took, from [`FinalFs::walked`] when asked
    /// before.
    fn walked_dir<'a>(&self, dir: &str, lookup: &dyn Fn(&str) -> Option<Entry<'a>>) -> Walked {
        if let Some(w) = self.walked.lock().ok().and_then(|m| m.get(dir).cloned()) {
            return w;
        }
        let todo: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).rev().collect();
        let w = walk(todo, String::new(), 0, true, lookup);
        if let Ok(mut m) = self.walked.lock() {
            m.insert(dir.into(), w.clone());
        }
        w
    }

    /// As [`resolve`](Self::resolve), over any lookup (the plan resolves against the view
    /// after removals).
    pub fn resolve_with<'a>(
        &self,
        path: &str,
        follow_last: bool,
        lookup: &dyn Fn(&str) -> Option<Entry<'a>>,
    ) -> Option<String> {
        resolve_in(path, follow_last, lookup)
    }

    /// Directory symlinks of the final image as (link path, canonical target dir), e.g.
    /// ("bin", "usr/bin") on usr-merged Debian: a rule for `/bin/sh` must also match `usr/bin/sh`.
    pub fn dir_aliases(&self) -> &[(String, String)] {
        self.aliases.get_or_init(|| self.find_dir_aliases())
    }

    fn find_dir_aliases(&self) -> Vec<(String, String)> {
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
        let k = self.keys();
        self.map.from(k, &prefix).next().is_some_and(|a| k.of(a).starts_with(&prefix))
    }

    /// The contents the scan kept for a file (full for account files, a prefix otherwise).
    pub fn prefix(&self, path: &str) -> Option<&[u8]> {
        let canon = self.resolve(path, true)?;
        self.get(&canon).and_then(|(_, e)| e.prefix())
    }
}

/// Resolve `path` within the root over `lookup` (see [`FinalFs::resolve`]). One string is built
/// as the walk goes (a component pushed or popped in place): the unpack simulation resolves
/// every entry's parent, and a string per component per step was most of its time.
pub fn resolve_in<'a>(path: &str, follow_last: bool, lookup: &dyn Fn(&str) -> Option<Entry<'a>>) -> Option<String> {
    let todo: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).rev().collect();
    walk(todo, String::with_capacity(path.len()), 0, follow_last, lookup).map(|(p, _)| p)
}

/// The walk of [`resolve_in`]: `todo`'s components (the next one last) from `cur`, with `hops`
/// symlinks already taken; where it ends and the symlinks taken in all, or None past
/// [`MAX_HOPS`].
fn walk<'t, 'a: 't>(
    mut todo: Vec<&'t str>,
    mut cur: String,
    mut hops: usize,
    follow_last: bool,
    lookup: &dyn Fn(&str) -> Option<Entry<'a>>,
) -> Option<(String, usize)> {
    let pop = |cur: &mut String| cur.truncate(split_parent(cur).0.len());
    while let Some(c) = todo.pop() {
        match c {
            "." => continue,
            ".." => {
                pop(&mut cur);
                continue;
            }
            _ => {}
        }
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(c);
        let last = todo.is_empty();
        if let Some(e) = lookup(&cur) {
            if e.kind == Kind::Symlink && (!last || follow_last) {
                hops += 1;
                if hops > MAX_HOPS {
                    return None;
                }
                let target = e.link().unwrap_or_default();
                pop(&mut cur);
                if target.starts_with('/') {
                    cur.clear();
                }
                todo.extend(target.split('/').filter(|c| !c.is_empty()).rev());
            }
        }
    }
    Some((cur, hops))
}

/// The first directory above `path` that is, at this point of the unpacking, a symlink whose
/// target leaves the root (absolute, or more `..` than it is deep).
fn escaping_ancestor(map: &Sorted, k: Keys, path: &str) -> Option<String> {
    let mut end = 0;
    while let Some(i) = path[end..].find('/') {
        let dir = &path[..end + i];
        end += i + 1;
        let Some(loc) = map.get(k, dir).map(|a| a.loc()) else { continue };
        let e = k.layers[loc.layer].entries.at(loc.entry);
        if e.kind == Kind::Symlink && e.link().is_some_and(|t| link_leaves_root(dir, t)) {
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
    use crate::scan::{Entries, EntryInfo};

    pub fn entry(path: &str, kind: Kind, link: Option<&str>) -> EntryInfo {
        let mut e = EntryInfo {
            path: path.into(),
            kind,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: 0,
            caps: false,
            escapes: false,
            prefix: None,
            busybox: false,
            rare: None,
        };
        e.set_link(link);
        e
    }

    pub fn layer(entries: Vec<EntryInfo>) -> LayerIndex {
        let entries = Entries::from_owned(entries).expect("a small layer packs");
        LayerIndex { entries, codec: Codec::None, diff_id: Digest::of(b""), uncompressed_size: 0 }
    }

    /// The merged view of a layer of many entries costs a bounded number of bytes per entry,
    /// at its peak too (measured with the unit tests' counting allocator): an 8-byte location
    /// in full blocks of a sorted index whose keys are the scan's names, also when the layer's
    /// paths go between those of a lower layer (as a vendor tree's under `opt/` between the
    /// base's: splitting a full block in the middle left them half empty, 16 bytes an entry).
    /// It was a `BTreeMap` keyed by the shared names (about 50), before that 40-byte elements
    /// keyed by a copy of the name, and a second copy of every name in a set kept for opaque
    /// markers.
    #[test]
    fn the_merged_view_costs_bounded_bytes_per_entry() {
        let n = 100_000;
        let mut base: Vec<EntryInfo> = (0..1000).map(|i| entry(&format!("a/f{i:04}"), Kind::File, None)).collect();
        base.extend(["opt/aaa", "opt/zzz"].map(|p| entry(p, Kind::File, None)));
        base.extend((0..1000).map(|i| entry(&format!("z/f{i:04}"), Kind::File, None)));
        let entries = (0..n)
            .map(|i| entry(&format!("opt/many/d{:05}/file-{i:07}.txt", i / 500), Kind::File, None))
            .collect::<Vec<_>>();
        let (lower, l) = (layer(base), layer(entries));
        let start = crate::memory::counting::start();
        let fs = FinalFs::build(vec![lower, l]);
        let (live, peak) = crate::memory::counting::since(start);
        let implied = 204; // a, z, opt, opt/many, 200 d*
        assert_eq!((fs.iter().count(), fs.implied_dirs().count()), (n + 2002, implied));
        let (per_live, per_peak) = (live / n as i64, peak / n as i64);
        eprintln!("merged view: {live} bytes live, {peak} at peak: {per_live} and {per_peak} per entry");
        assert!(per_live <= 8 && per_peak <= 8, "{per_live} / {per_peak} bytes per entry");
        // In order all the same.
        let paths: Vec<&str> = fs.iter().map(|(p, _, _)| p).collect();
        assert!(paths.windows(2).all(|w| w[0] < w[1]) && paths[1000] == "opt/aaa" && paths[n + 1001] == "opt/zzz");
    }

    /// The sorted index keeps paths in order, found and removed, whatever order they come in
    /// (blocks split in the middle, emptied ones dropped): as a `BTreeSet` of the same paths.
    #[test]
    fn the_sorted_index_orders_paths_as_a_btree_does() {
        let n = 5_000;
        // A shuffled order: a multiplicative step through 0..n.
        let names: Vec<String> = (0..n).map(|i| format!("d{}/f{:05}", (i * 7919) % 13, (i * 7919) % n)).collect();
        let layers = vec![Arc::new(layer(names.iter().map(|p| entry(p, Kind::File, None)).collect()))];
        let placed = HashMap::new();
        let k = Keys { layers: &layers, placed: &placed };
        let mut s = Sorted::default();
        let mut model = std::collections::BTreeMap::new();
        for (i, p) in names.iter().enumerate() {
            s.insert(k, p, At::new(Loc { layer: 0, entry: i }, false));
            model.insert(p.clone(), i);
        }
        for p in names.iter().step_by(3) {
            s.remove(k, p);
            model.remove(p);
        }
        s.remove_under(k, "d5");
        model.retain(|p, _| !p.starts_with("d5/"));
        let got: Vec<(&str, usize)> = s.iter().map(|a| (k.of(a), a.loc().entry)).collect();
        let want: Vec<(&str, usize)> = model.iter().map(|(p, &i)| (p.as_str(), i)).collect();
        assert_eq!(got, want);
        assert!(s.blocks.iter().all(|b| !b.is_empty() && b.len() <= BLOCK) && s.blocks.len() > 2);
        assert_eq!(
            s.from(k, "d3/").next().map(|a| k.of(a)),
            model.range("d3/".to_string()..).next().map(|(p, _)| p.as_str())
        );
        assert!(s.get(k, "d5/f00005").is_none() && s.get(k, &names[1]).is_some());
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
            fs.through_symlink.iter().map(|(l, s)| (l.layer, fs.entry(*l).path, s.as_str())).collect();
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

    /// Everything a merged view holds, as comparable text.
    fn dump(fs: &FinalFs) -> Vec<String> {
        let mut out: Vec<String> =
            fs.iter().map(|(p, l, e)| format!("{p} <- {}:{} {:?}", l.layer, l.entry, e.kind)).collect();
        out.extend(fs.implied_dirs().map(|(p, l)| format!("implied {p} {l}")));
        out.extend(fs.unpack_notes.iter().cloned());
        out.extend(fs.through_symlink.iter().map(|(l, s)| format!("through {}:{} {s}", l.layer, l.entry)));
        out
    }

    /// A directory whose resolution changes between two of its entries (a symlink put on the
    /// way, the directory replaced) is resolved again: the remembered parent is dropped.
    #[test]
    fn a_directory_changed_between_two_of_its_entries_is_resolved_again() {
        let l = layer(vec![
            entry("x", Kind::Dir, None),
            entry("x/y", Kind::Dir, None),
            entry("x/y/z", Kind::Symlink, Some("..")),
            // x/y/z is x: placed at x/f1.
            entry("x/y/z/f1", Kind::File, None),
            // Placed at x/y: replaces that directory with a symlink to /etc ...
            entry("x/y/z/y", Kind::Symlink, Some("/etc")),
            // ... so x/y/z is now etc/z, and f2 goes there.
            entry("x/y/z/f2", Kind::File, None),
        ]);
        let fs = FinalFs::build(vec![l]);
        assert!(fs.get("x/f1").is_some());
        assert!(fs.get("x/f2").is_none() && fs.get("etc/z/f2").is_some(), "{:?}", dump(&fs));
    }

    /// A small generator of hostile layers: short names, symlinks up, across and out,
    /// whiteouts and opaque markers, replaced directories.
    fn random_layers(seed: u64) -> Vec<LayerIndex> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let names = ["a", "b", "c", "..", "."];
        let links = ["..", "/", "a", "/b", "../c", "a/b", "/etc", ".", "b/.."];
        (0..3)
            .map(|_| {
                let n = 5 + next(25);
                let mut v = Vec::new();
                let mut dir: Vec<&str> = Vec::new();
                for _ in 0..n {
                    // Mostly stay in the same directory, as layers do.
                    match next(6) {
                        0 if !dir.is_empty() => {
                            dir.pop();
                        }
                        1 if dir.len() < 4 => dir.push(names[next(3) as usize]),
                        _ => {}
                    }
                    let base = match next(12) {
                        0 => ".wh..wh..opq".to_string(),
                        1 => format!(".wh.{}", names[next(3) as usize]),
                        _ => names[next(5) as usize].to_string(),
                    };
                    let path = dir.iter().copied().chain([base.as_str()]).collect::<Vec<_>>().join("/");
                    let e = match next(5) {
                        0 => entry(&path, Kind::Symlink, Some(links[next(links.len() as u64) as usize])),
                        1 => entry(&path, Kind::HardLink, Some(names[next(3) as usize])),
                        2 => entry(&path, Kind::Dir, None),
                        _ => entry(&path, Kind::File, None),
                    };
                    v.push(e);
                }
                layer(v)
            })
            .collect()
    }

    /// The remembered parent and the remembered directory walks change nothing: on thousands
    /// of generated hostile layers, the view built with them is the view built without, and
    /// every path resolves as the plain walk resolves it.
    #[test]
    fn remembered_parents_and_walks_change_no_view_and_no_resolution() {
        for seed in 0..3000 {
            let fs = FinalFs::build_with(random_layers(seed), true);
            let plain = FinalFs::build_with(random_layers(seed), false);
            assert_eq!(dump(&fs), dump(&plain), "seed {seed}");
            let lookup = |p: &str| plain.get(p).map(|(_, e)| e);
            for a in ["a", "b", "c", "..", ".", "etc", "x"] {
                for b in ["a", "b", "c", "..", "."] {
                    for c in ["a", "b", "", ".."] {
                        let path = format!("{a}/{b}/{c}");
                        for follow in [true, false] {
                            assert_eq!(
                                fs.resolve(&path, follow),
                                resolve_in(&path, follow, &lookup),
                                "seed {seed}: {path} {follow}"
                            );
                        }
                    }
                }
            }
        }
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
