//! FinalFs: the filesystem a container started from the image would see — every layer's
//! headers merged in order, whiteouts and opaque directories applied — with path resolution
//! through symlinks.
//!
//! Owns: the merged view and path lookup. Must not: read file bodies (beyond the scan's prefixes).

use crate::layer::path::{join, split_parent};
use crate::layer::tar::Kind;
use crate::scan::{EntryInfo, LayerIndex};
use std::collections::BTreeMap;
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
    map: BTreeMap<String, Loc>,
    /// Entries stored under a symlink (of their own or a lower layer) whose target leaves the
    /// root, with that symlink's path: a naive unpacker would write them outside the root; a
    /// container runtime writes them inside it. Reported by the audit; the map keeps them under
    /// their stored name and [`FinalFs::resolve`] never leaves the root.
    pub through_symlink: Vec<(Loc, String)>,
}

/// Maximum symlinks followed in one lookup (as Linux's ELOOP limit).
const MAX_HOPS: usize = 40;

impl FinalFs {
    pub fn build<L: Into<Arc<LayerIndex>>>(layers: Vec<L>) -> FinalFs {
        let layers: Vec<Arc<LayerIndex>> = layers.into_iter().map(Into::into).collect();
        let mut map: BTreeMap<String, Loc> = BTreeMap::new();
        let mut through_symlink = Vec::new();
        for (li, layer) in layers.iter().enumerate() {
            // Whiteouts hide what lower layers hold; apply them before this layer's own entries.
            for e in &layer.entries {
                if let Some((target, opaque)) = whiteout_of(e) {
                    if opaque {
                        remove_under(&mut map, &target);
                    } else {
                        map.remove(&target);
                        remove_under(&mut map, &target);
                    }
                }
            }
            for (ei, e) in layer.entries.iter().enumerate() {
                if e.is_whiteout() || e.path.is_empty() {
                    continue;
                }
                if e.kind != Kind::Dir {
                    remove_under(&mut map, &e.path);
                }
                if let Some(link) = escaping_ancestor(&map, &layers, &e.path) {
                    through_symlink.push((Loc { layer: li, entry: ei }, link));
                }
                map.insert(e.path.clone(), Loc { layer: li, entry: ei });
            }
        }
        FinalFs { layers, map, through_symlink }
    }

    pub fn entry(&self, loc: Loc) -> &EntryInfo {
        &self.layers[loc.layer].entries[loc.entry]
    }

    /// The entry at exactly this (normalised, canonical) path.
    pub fn get(&self, path: &str) -> Option<(Loc, &EntryInfo)> {
        self.map.get(path).map(|&l| (l, self.entry(l)))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Loc, &EntryInfo)> {
        self.map.iter().map(|(p, &l)| (p.as_str(), l, self.entry(l)))
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
                    let mut parts: Vec<String> =
                        target.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect();
                    parts.reverse();
                    todo.extend(parts);
                }
            }
        }
        Some(cur.join("/"))
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
        let prefix = format!("{path}/");
        self.map.range(prefix.clone()..).next().is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    /// The contents the scan kept for a file (full for account files, a prefix otherwise).
    pub fn prefix(&self, path: &str) -> Option<&[u8]> {
        let canon = self.resolve(path, true)?;
        self.get(&canon).and_then(|(_, e)| e.prefix.as_deref())
    }
}

/// The first directory above `path` that is, at this point of the unpacking, a symlink whose
/// target leaves the root (absolute, or more `..` than it is deep).
fn escaping_ancestor(map: &BTreeMap<String, Loc>, layers: &[Arc<LayerIndex>], path: &str) -> Option<String> {
    let mut end = 0;
    while let Some(i) = path[end..].find('/') {
        let dir = &path[..end + i];
        end += i + 1;
        let Some(loc) = map.get(dir) else { continue };
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

fn whiteout_of(e: &EntryInfo) -> Option<(String, bool)> {
    let (dir, base) = split_parent(&e.path);
    let hidden = base.strip_prefix(".wh.")?;
    if hidden == ".wh..opq" {
        return Some((dir.to_string(), true));
    }
    Some((join(dir, hidden), false))
}

fn remove_under(map: &mut BTreeMap<String, Loc>, dir: &str) {
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    let doomed: Vec<String> =
        map.range(prefix.clone()..).take_while(|(p, _)| p.starts_with(&prefix)).map(|(p, _)| p.clone()).collect();
    for p in doomed {
        map.remove(&p);
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
            fs.through_symlink.iter().map(|(l, s)| (l.layer, fs.entry(*l).path.as_str(), s.as_str())).collect();
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
