//! Plan: apply a profile's file rules to the final filesystem and say, per layer, which entries
//! are removed or changed — and so which layers change at all. Paths are matched as the
//! container sees them, through directory symlinks (`/bin/sh` also names `usr/bin/sh` on
//! usr-merged Debian). A removed path is dropped from every layer that holds it, so the image
//! shrinks; no whiteouts are added.
//!
//! Owns: the decisions. Must not: read or write layer bytes.

use crate::digest::Digest;
use crate::fs::{FinalFs, Loc};
use crate::layer::path::split_parent;
use crate::layer::tar::Kind;
use crate::profile::{FollowCopies, Profile, Rule, RuleSet};
use crate::scan::Entry;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What happens to one entry of one layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EntryChange {
    pub remove: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strip_caps: bool,
    /// A removed hardlink target whose data moves to this kept link's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote_to: Option<String>,
    /// A kept hardlink whose target is removed: it now points at the promoted path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relink_to: Option<String>,
    /// The stored name (or hardlink target) leaves the root (`../`, absolute): rewrite it as
    /// normalised inside the root (`../../etc/x` → `etc/x`), as a container runtime reads it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub normalize: bool,
    /// New contents for a regular file (an edited package database: [`crate::pkgdb`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<NewContent>,
    /// A new owner (uid, gid): a `[runtime] writable` path handed to the profile's user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<(u64, u64)>,
}

/// Replacement bytes for a file; serialised (into the rewrite cache key) as their digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewContent {
    pub sha256: String,
    #[serde(skip)]
    pub data: std::sync::Arc<[u8]>,
}

impl NewContent {
    pub fn new(data: Vec<u8>) -> NewContent {
        NewContent { sha256: crate::digest::Digest::of(&data).to_string(), data: data.into() }
    }
}

/// The rewrite instructions for one layer, keyed by the entry's normalised path.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerPlan {
    pub changes: BTreeMap<String, EntryChange>,
}

impl LayerPlan {
    pub fn is_unchanged(&self) -> bool {
        self.changes.is_empty()
    }
    pub fn removed(&self) -> usize {
        self.changes.values().filter(|c| c.remove && c.promote_to.is_none()).count()
    }
    pub fn changed(&self) -> usize {
        self.changes.values().filter(|c| !c.remove || c.promote_to.is_some()).count()
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub layers: Vec<LayerPlan>,
    /// Every removed path of the final image (canonical), with the rule that removed it.
    pub removed: BTreeMap<String, Rule>,
    pub setuid_stripped: Vec<String>,
    pub caps_stripped: Vec<String>,
    pub world_writable_fixed: Vec<String>,
    /// Things the plan chose not to do, and why.
    pub notes: Vec<String>,
    /// Byte-identical copies of removed programs and secrets found by hashing ([`plan_with`]),
    /// for [`remove_copies`].
    #[serde(skip)]
    pub copies_found: BTreeMap<String, CopyOf>,
    /// Each removed copy (canonical path) and the removed file it followed.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub copy_of: BTreeMap<String, String>,
    /// What the package databases say after the plan ([`follow_databases`]).
    #[serde(skip_serializing_if = "PackageChanges::is_empty")]
    pub packages: PackageChanges,
    /// Why the plan cannot be carried out (a package database harden cannot read), one line
    /// each naming the file; the rebuild stops on the first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// `[runtime] writable` directories given to the profile's user ([`hand_over_writable`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub handed_over: Vec<HandOver>,
}

/// A `[runtime] writable` directory given to the profile's user: its entries (and those under
/// it) rewritten in the layers that hold them, or, missing from the image, created in the
/// user layer ([`crate::config::plan_user`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HandOver {
    /// Canonical (relative to the root, through directory symlinks).
    pub path: String,
    pub uid: u64,
    pub gid: u64,
    /// Missing from the image: created (with its parents' modes) in the user layer.
    pub created: bool,
    /// Entries whose owner the rewrite changes (the directory and what is under it).
    pub entries: usize,
}

/// The package databases before and after the plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PackageChanges {
    /// Packages the databases listed before, and list after.
    pub before: usize,
    pub after: usize,
    /// Packages gone from the database: none of their files is left.
    pub removed: Vec<String>,
    /// Packages that lost some of their files (the databases no longer list those).
    pub trimmed: Vec<String>,
    /// Packages that lost files but that a database left as it was still lists with them
    /// (rpm's: harden does not edit it), so a scanner will still report them whole.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_files: Vec<String>,
    /// A database left as it was (rpm; or `keep_database`), and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_as_is: Option<String>,
}

impl PackageChanges {
    pub fn is_empty(&self) -> bool {
        *self == PackageChanges::default()
    }
}

impl Plan {
    pub fn is_removed(&self, path: &str) -> bool {
        self.removed.contains_key(path)
    }
}

fn parent(p: &str) -> &str {
    split_parent(p).0
}

/// A guess, entry by entry while a layer still streams in and before the image is scanned, at
/// whether the plan may change that layer: an entry a `remove` rule matches (itself or a
/// directory above it), a setuid/setgid file, a file with capabilities or a world-writable one
/// when the profile fixes those, a package database when the profile removes anything. It can
/// be wrong both ways (`keep` rules, a path seen through a directory symlink, a copy of a
/// removed tool, a directory handed over are not considered): it only says which layers are
/// worth uploading before the plan is made ([`crate::source::Scanner::stop_mirroring`]); the
/// plan alone decides what the result holds.
#[derive(Clone)]
pub struct MayChange {
    remove: std::sync::Arc<globset::GlobSet>,
    setuid: bool,
    caps: bool,
    world_writable: bool,
    databases: bool,
}

impl MayChange {
    pub fn new(profile: &Profile) -> MayChange {
        let mut b = globset::GlobSetBuilder::new();
        // Validated at load time; one that no longer compiles matches nothing (as in RuleSet).
        for g in profile.remove.iter().filter_map(|r| crate::profile::compile(&r.pattern).ok()) {
            b.add(g);
        }
        MayChange {
            remove: std::sync::Arc::new(b.build().unwrap_or_else(|_| globset::GlobSet::empty())),
            setuid: profile.strip_setuid,
            caps: profile.strip_capabilities,
            world_writable: profile.fix_world_writable,
            databases: profile.changes_files(),
        }
    }

    /// A watcher for one layer's entries, in order: true for an entry that may make the plan
    /// change the layer. It remembers each directory's verdict (memory: one per directory).
    pub fn watcher(&self) -> impl FnMut(Entry<'_>) -> bool + Send + 'static {
        let (me, mut dirs) = (self.clone(), HashMap::<String, bool>::new());
        move |e| me.entry(e, &mut dirs)
    }

    fn entry(&self, e: Entry<'_>, dirs: &mut HashMap<String, bool>) -> bool {
        let file = e.kind == Kind::File;
        let sticky_dir = e.kind == Kind::Dir && e.mode & 0o1000 != 0;
        (self.setuid && file && e.mode & 0o6000 != 0)
            || (self.caps && e.caps)
            || (self.world_writable && (file || e.kind == Kind::Dir) && e.mode & 0o002 != 0 && !sticky_dir)
            || (self.databases && crate::pkgdb::paths::is_database_file(e.path))
            || self.removes(e.path, dirs)
    }

    /// Whether a `remove` rule matches `path` or a directory above it.
    fn removes(&self, path: &str, dirs: &mut HashMap<String, bool>) -> bool {
        if self.remove.is_empty() {
            return false;
        }
        if self.remove.is_match(path) {
            return true;
        }
        // The nearest directory above with a verdict, then those below it, top-down.
        let mut above = Vec::new();
        let mut d = parent(path);
        let mut verdict = false;
        while !d.is_empty() {
            if let Some(v) = dirs.get(d) {
                verdict = *v;
                break;
            }
            above.push(d);
            d = parent(d);
        }
        for d in above.into_iter().rev() {
            verdict = verdict || self.remove.is_match(d);
            dirs.insert(d.to_string(), verdict);
        }
        verdict
    }
}

/// Self-or-ancestor matching with memoisation by canonical directory (also used by the audit).
pub(crate) struct Matcher<'a> {
    set: RuleSet<'a>,
    aliases: &'a [(String, String)],
    /// The aliases by target: a path's aliases are found from its ancestors (a few lookups),
    /// not by trying every directory symlink of the image on every path.
    by_target: HashMap<&'a str, Vec<usize>>,
    /// The aliases of the last directory [`Matcher::through_alias`] was asked about: paths come
    /// in order, a directory's files one after another, so most asks are that one again.
    alias_dir: (String, Vec<usize>),
    memo: HashMap<String, Option<&'a Rule>>,
    /// The last directory [`Matcher::matches_dir`] answered, for the same reason.
    last_dir: Option<(String, Option<&'a Rule>)>,
}

impl<'a> Matcher<'a> {
    pub(crate) fn new(rules: &'a [Rule], aliases: &'a [(String, String)]) -> Self {
        let mut by_target: HashMap<&'a str, Vec<usize>> = HashMap::new();
        for (i, (_, target)) in aliases.iter().enumerate() {
            by_target.entry(target.as_str()).or_default().push(i);
        }
        Matcher {
            set: RuleSet::new(rules),
            aliases,
            by_target,
            alias_dir: (String::new(), Vec::new()),
            memo: HashMap::new(),
            last_dir: None,
        }
    }

    /// The first rule (in the aliases' order) matching a name of `path` through a directory
    /// alias: `link/rest` for each alias whose target is an ancestor of `path` (`target/rest`).
    fn through_alias(&mut self, path: &str) -> Option<&'a Rule> {
        if self.by_target.is_empty() {
            return None;
        }
        // The aliases whose target is `path`'s directory or above it (in the aliases' order). They
        // depend on the directory alone; the first answer (none, for the root) holds for the root.
        let dir = parent(path);
        if self.alias_dir.0 != dir {
            let mut hits: Vec<usize> = Vec::new();
            for (i, _) in path.match_indices('/') {
                if let Some(v) = self.by_target.get(&path[..i]) {
                    hits.extend(v);
                }
            }
            hits.sort_unstable();
            self.alias_dir = (dir.to_string(), hits);
        }
        self.alias_dir.1.iter().find_map(|&i| {
            let (link, target) = &self.aliases[i];
            self.set.which(&format!("{link}/{}", &path[target.len() + 1..]))
        })
    }
    /// The rule `path` or its nearest matching ancestor falls under. Only ancestors are
    /// remembered (a directory is asked for once per entry under it; a leaf once): the memo
    /// grows with the directories of the image, not its entries.
    pub(crate) fn matches(&mut self, path: &str) -> Option<&'a Rule> {
        if path.is_empty() || self.set.is_empty() {
            return None;
        }
        if let Some(r) = self.memo.get(path) {
            return *r;
        }
        // The path itself, then its names through the directory aliases.
        let own = self.set.which(path).or_else(|| self.through_alias(path));
        own.or_else(|| self.matches_dir(parent(path)))
    }

    /// [`matches`](Self::matches) for a directory, remembered.
    fn matches_dir(&mut self, dir: &str) -> Option<&'a Rule> {
        if dir.is_empty() {
            return None;
        }
        if let Some((last, r)) = &self.last_dir {
            if last == dir {
                return *r;
            }
        }
        let r = match self.memo.get(dir) {
            Some(r) => *r,
            None => {
                let r = self.matches(dir);
                self.memo.insert(dir.to_string(), r);
                r
            }
        };
        self.last_dir = Some((dir.to_string(), r));
        r
    }
}

/// One step of planning: reads the image and the profile, adds to the plan. Passes run in
/// [`PASSES`] order, each seeing what the earlier ones decided — as regclient's `mod` applies
/// one step per option — so a new kind of change is a new pass, tested on its own.
pub type Pass = fn(&FinalFs, &Profile, &mut Plan);

/// The passes, in order.
pub const PASSES: &[(&str, Pass)] = &[
    ("select removals", select_removals),
    // Before the hardlink and layer passes, which must see every removal.
    ("remove packages", remove_packages),
    ("copies of removed tools", remove_copies),
    ("keep the directories of kept paths", keep_directories),
    ("keep cross-layer hardlink targets", keep_cross_layer_link_targets),
    ("mark layers", mark_layers),
    ("fix modes and capabilities", fix_modes),
    ("promote hardlinks", promote_hardlinks),
    ("package databases follow the files", follow_databases),
    ("hand writable paths to the user", hand_over_writable),
];

/// What `profile` does to the image `fs`: every pass in order.
pub fn plan(fs: &FinalFs, profile: &Profile) -> Plan {
    plan_with(fs, profile, &BTreeMap::new())
}

/// [`plan`], with `extra` removals decided elsewhere (byte-identical copies of removed programs
/// and secrets, found by hashing [`copy_check`]'s candidates): every pass in order.
pub fn plan_with(fs: &FinalFs, profile: &Profile, extra: &BTreeMap<String, CopyOf>) -> Plan {
    let mut p = Plan { layers: vec![LayerPlan::default(); fs.layers.len()], ..Plan::default() };
    p.copies_found = extra.clone();
    for (_, pass) in PASSES {
        pass(fs, profile, &mut p);
    }
    p
}

/// Whether the removal of `path` (by `rule`) takes the file's copies with it: its rule follows
/// copies ([`FollowCopies`], data of groups.toml and of a profile's own rules) for a file of its
/// mode. A cache, document or log removal never does.
fn follows(fs: &FinalFs, path: &str, rule: &Rule) -> bool {
    fs.get(path).is_some_and(|(_, e)| e.kind == Kind::File && rule.follow_copies.follows(e.mode))
}

/// Whether `e` can be a copy of a removed file whose rule follows copies as `follow` says: an
/// executable's copy counts when it is executable too (a program copy is a program only if it
/// can run), a secret's whatever its mode.
fn can_be_copy(follow: FollowCopies, e: Entry<'_>) -> bool {
    follow == FollowCopies::Files || e.mode & 0o111 != 0
}

/// Files that may be byte-identical copies of a file the plan removes by a rule that follows
/// copies: visible, regular, non-empty, neither removed nor kept, of the size of such a removed
/// file (and executable when only executables follow) — with those removed files. Only these
/// are hashed: executables' hashes come from the first scan ([`crate::scan::ExecHashes`]), the
/// rest by a second read of their layers ([`crate::scan::hash_entries`]); empty when no file
/// could be a copy.
pub fn copy_check(fs: &FinalFs, plan: &Plan, profile: &Profile) -> Vec<Loc> {
    let aliases = fs.dir_aliases();
    let mut keep_m = Matcher::new(&profile.keep, aliases);
    let file = |e: Entry<'_>| e.kind == Kind::File && e.size > 0;
    let originals: Vec<(Loc, u64, FollowCopies)> = fs
        .iter()
        .filter_map(|(p, l, e)| {
            let rule = plan.removed.get(p)?;
            (file(e) && follows(fs, p, rule)).then_some((l, e.size, rule.follow_copies))
        })
        .collect();
    let mut sizes: HashMap<u64, FollowCopies> = HashMap::new();
    for &(_, size, follow) in &originals {
        let f = sizes.entry(size).or_insert(follow);
        if follow == FollowCopies::Files {
            *f = follow;
        }
    }
    let candidates: Vec<Loc> = fs
        .iter()
        .filter(|(p, _, e)| {
            file(*e)
                && sizes.get(&e.size).is_some_and(|f| can_be_copy(*f, *e))
                && !plan.is_removed(p)
                && keep_m.matches(p).is_none()
        })
        .map(|(_, l, _)| l)
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let wanted: HashSet<u64> = candidates.iter().map(|l| fs.entry(*l).size).collect();
    originals.into_iter().filter(|o| wanted.contains(&o.1)).map(|o| o.0).chain(candidates).collect()
}

/// A file that goes because it is a copy of a removed one: the original (canonical path) and
/// the rule that removed it.
#[derive(Clone, Debug)]
pub struct CopyOf {
    pub original: String,
    pub rule: Rule,
}

impl CopyOf {
    /// The rule recorded for the copy: `copy of /usr/bin/dash` under the original's origin,
    /// following copies as the original's rule does.
    fn rule(&self, suffix: &str) -> Rule {
        Rule {
            pattern: format!("copy of /{}{suffix}", self.original),
            origin: self.rule.origin.clone(),
            follow_copies: self.rule.follow_copies,
        }
    }
}

/// The removals [`copy_check`]'s hashes call for: each candidate byte-identical to a removed
/// file whose rule follows copies goes with it (an executable's copy only when executable).
pub fn copies(fs: &FinalFs, plan: &Plan, hashes: &HashMap<Loc, Digest>) -> BTreeMap<String, CopyOf> {
    let mut by_hash: HashMap<&Digest, (&str, &Rule)> = HashMap::new();
    for (p, l, _) in fs.iter() {
        if let (Some(h), Some(r)) = (hashes.get(&l), plan.removed.get(p)) {
            if follows(fs, p, r) {
                // A secret's rule takes more copies than a program's: it wins a tie.
                let e = by_hash.entry(h).or_insert((p, r));
                if r.follow_copies == FollowCopies::Files {
                    *e = (p, r);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for (p, l, e) in fs.iter() {
        if plan.is_removed(p) {
            continue;
        }
        if let Some((orig, rule)) = hashes.get(&l).and_then(|h| by_hash.get(h)) {
            if can_be_copy(rule.follow_copies, e) {
                out.insert(p.to_string(), CopyOf { original: orig.to_string(), rule: (*rule).clone() });
            }
        }
    }
    out
}

/// Paths the `remove` rules match (through directory symlinks, a directory taking what is under
/// it), unless a `keep` rule matches.
pub fn select_removals(fs: &FinalFs, profile: &Profile, p: &mut Plan) {
    let aliases = fs.dir_aliases();
    let mut remove_m = Matcher::new(&profile.remove, aliases);
    let mut keep_m = Matcher::new(&profile.keep, aliases);
    for (path, _, _) in fs.iter() {
        if keep_m.matches(path).is_none() {
            if let Some(rule) = remove_m.matches(path) {
                p.removed.insert(path.to_string(), rule.clone());
            }
        }
    }
}

/// The same program or secret under another name goes with a removed one, as `copy of
/// /usr/bin/dash`, unless kept — only when the rule that removed it follows copies
/// ([`FollowCopies`]): byte-identical copies ([`plan_with`]'s extra removals), busybox under any
/// name once such a rule removes a busybox, and every other name (hardlink) of a removed file.
/// Each copy's original is recorded in [`Plan::copy_of`].
pub fn remove_copies(fs: &FinalFs, profile: &Profile, p: &mut Plan) {
    let aliases = fs.dir_aliases();
    let mut keep_m = Matcher::new(&profile.keep, aliases);
    let kept: HashSet<String> =
        fs.iter().filter(|(path, _, _)| keep_m.matches(path).is_some()).map(|(path, _, _)| path.to_string()).collect();
    let add = |p: &mut Plan, path: &str, of: &CopyOf, suffix: &str| {
        if !kept.contains(path) && !p.removed.contains_key(path) {
            p.removed.insert(path.to_string(), of.rule(suffix));
            p.copy_of.insert(path.to_string(), of.original.clone());
        }
    };
    for (path, of) in std::mem::take(&mut p.copies_found) {
        add(p, &path, &of, "");
    }
    let busybox =
        p.removed.iter().find(|(path, r)| fs.get(path).is_some_and(|(_, e)| e.busybox) && follows(fs, path, r));
    if let Some(of) = busybox.map(|(by, rule)| CopyOf { original: by.clone(), rule: rule.clone() }) {
        for (path, _, _) in fs.iter().filter(|(_, _, e)| e.busybox) {
            add(p, path, &of, " (busybox)");
        }
    }
    // A hardlink is the same file under another name (e.g. /usr/local/bin/mysh linked to
    // /usr/bin/dash).
    let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (path, _, e) in fs.iter() {
        if let (Kind::HardLink, Some(t)) = (e.kind, e.link()) {
            names.entry(t).or_default().push(path);
        }
    }
    for (target, links) in &names {
        let group: Vec<&str> = std::iter::once(*target).chain(links.iter().copied()).collect();
        // The data's mode is the target's (a link's own header may say anything).
        let Some(mode) = fs.get(target).map(|(_, e)| e.mode) else { continue };
        let by = group.iter().find_map(|q| {
            let r = p.removed.get(*q).filter(|r| r.follow_copies.follows(mode))?;
            Some(CopyOf { original: q.to_string(), rule: r.clone() })
        });
        if let Some(of) = by {
            for q in &group {
                add(p, q, &of, "");
            }
        }
    }
}

/// A kept path keeps its directories.
pub fn keep_directories(fs: &FinalFs, profile: &Profile, p: &mut Plan) {
    let aliases = fs.dir_aliases();
    let mut keep_m = Matcher::new(&profile.keep, aliases);
    let kept: Vec<String> =
        fs.iter().filter(|(path, _, _)| keep_m.matches(path).is_some()).map(|(path, _, _)| path.to_string()).collect();
    for k in &kept {
        let mut d = parent(k);
        while !d.is_empty() && p.removed.remove(d).is_some() {
            d = parent(d);
        }
    }
}

/// Hardlinks whose removed target lives in a lower layer cannot be promoted while streaming
/// (the data is in another blob): keep the target instead, and say so.
pub fn keep_cross_layer_link_targets(fs: &FinalFs, _: &Profile, p: &mut Plan) {
    for (path, loc, e) in fs.iter() {
        if e.kind == Kind::HardLink && !p.removed.contains_key(path) {
            if let Some(t) = e.link() {
                let same_layer = fs.layers[loc.layer].entries.iter().any(|x| *x.path == *t && x.kind == Kind::File);
                if p.removed.contains_key(t) && !same_layer {
                    p.removed.remove(t);
                    p.notes.push(format!("kept /{t}: hardlinked from /{path} in a higher layer"));
                }
            }
        }
    }
}

/// Every layer holding a removed path drops it (no whiteouts); an entry whose stored name
/// leaves the root is rewritten with the name normalised, whatever the profile.
pub fn mark_layers(fs: &FinalFs, _: &Profile, p: &mut Plan) {
    let mut escaping = 0;
    for (li, layer) in fs.layers.iter().enumerate() {
        for (ei, e) in layer.entries.iter().enumerate() {
            // Removed paths are where entries are written (under a symlinked parent, not their
            // stored name); the layer's change names the entry as stored.
            if p.removed.contains_key(e.path) || p.removed.contains_key(fs.placed_path(Loc { layer: li, entry: ei })) {
                p.layers[li].changes.entry(e.path.to_string()).or_default().remove = true;
            }
            if e.escapes {
                p.layers[li].changes.entry(e.path.to_string()).or_default().normalize = true;
                escaping += 1;
            }
        }
    }
    if escaping > 0 {
        p.notes.push(format!(
            "{escaping} entries whose stored name leaves the root (../ or absolute) are rewritten with the name \
             normalised inside it"
        ));
    }
}

/// setuid/setgid bits (except `setuid_allow`), world-writable bits (sticky directories
/// excepted) and file capabilities, on what stays.
pub fn fix_modes(fs: &FinalFs, profile: &Profile, p: &mut Plan) {
    let aliases = fs.dir_aliases();
    let mut allow_m = Matcher::new(&profile.setuid_allow, aliases);
    for (path, loc, e) in fs.iter() {
        if p.removed.contains_key(path) {
            continue;
        }
        let mut mode = e.mode;
        if profile.strip_setuid
            && matches!(e.kind, Kind::File | Kind::HardLink)
            && e.mode & 0o6000 != 0
            && allow_m.matches(path).is_none()
        {
            mode &= !0o6000;
            p.setuid_stripped.push(path.to_string());
        }
        let sticky_dir = e.kind == Kind::Dir && e.mode & 0o1000 != 0;
        if profile.fix_world_writable && matches!(e.kind, Kind::File | Kind::Dir) && e.mode & 0o002 != 0 && !sticky_dir
        {
            mode &= !0o002;
            p.world_writable_fixed.push(path.to_string());
        }
        let strip_caps = profile.strip_capabilities && e.caps;
        if strip_caps {
            p.caps_stripped.push(path.to_string());
        }
        if mode != e.mode || strip_caps {
            let c = p.layers[loc.layer].changes.entry(e.path.to_string()).or_default();
            if mode != e.mode {
                c.mode = Some(mode);
            }
            c.strip_caps = strip_caps;
        }
    }
}

/// `[runtime] writable` directories, and everything under them, belong to the profile's user
/// (non-root) in the image, so the app can write them with or without the contract's mounts (a
/// runtime gives a tmpfs the owner and mode of the directory it covers). The entries are
/// rewritten where they are — no layer is added for them; a directory the image lacks is
/// recorded `created`, for the user layer to add. A path that is not a directory is a note.
pub fn hand_over_writable(fs: &FinalFs, profile: &Profile, p: &mut Plan) {
    if profile.runtime.writable.is_empty() {
        return;
    }
    let Some((uid, gid)) = crate::config::profile_user_ids(fs, profile) else {
        p.notes.push("[runtime] writable: the profile sets no user, so no path is handed over".into());
        return;
    };
    if uid == 0 {
        return;
    }
    let (uid, gid) = (uid as u64, gid as u64);
    for w in &profile.runtime.writable {
        let Some(canon) = fs.resolve(w, true).filter(|c| !c.is_empty()) else {
            p.notes.push(format!("[runtime] writable {w} leaves the root through a symlink: not handed over"));
            continue;
        };
        if p.handed_over.iter().any(|h| h.path == canon) {
            continue;
        }
        match fs.get(&canon) {
            None => p.handed_over.push(HandOver { path: canon, uid, gid, created: true, entries: 0 }),
            Some((_, e)) if e.kind != Kind::Dir => {
                p.notes.push(format!("[runtime] writable {w} is not a directory in the image: not handed over"));
            }
            Some(_) => {
                let under = format!("{canon}/");
                let mut entries = 0;
                let inside = fs.iter().filter(|(path, _, _)| *path == canon || path.starts_with(&under));
                for (path, loc, e) in inside {
                    if p.removed.contains_key(path) || (e.uid, e.gid) == (uid, gid) {
                        continue;
                    }
                    p.layers[loc.layer].changes.entry(path.to_string()).or_default().owner = Some((uid, gid));
                    entries += 1;
                }
                p.handed_over.push(HandOver { path: canon, uid, gid, created: false, entries });
            }
        }
    }
}

/// Same-layer hardlinks to a removed target: the first kept link takes the data, later links
/// point at it.
pub fn promote_hardlinks(fs: &FinalFs, _: &Profile, p: &mut Plan) {
    for (li, layer) in fs.layers.iter().enumerate() {
        let mut promoted: HashMap<String, String> = HashMap::new();
        let mut seen_removed: HashSet<&str> = HashSet::new();
        for e in layer.entries.iter() {
            if e.kind == Kind::File && p.removed.contains_key(e.path) {
                seen_removed.insert(e.path);
            }
            if e.kind != Kind::HardLink || p.removed.contains_key(e.path) {
                continue;
            }
            let Some(t) = e.link() else { continue };
            if !seen_removed.contains(t) {
                continue;
            }
            let lp = &mut p.layers[li];
            if let Some(first) = promoted.get(t) {
                lp.changes.entry(e.path.to_string()).or_default().relink_to = Some(first.clone());
            } else {
                promoted.insert(t.to_string(), e.path.to_string());
                lp.changes.entry(t.to_string()).or_default().promote_to = Some(e.path.to_string());
                // The link's own entry is replaced by the promoted one.
                lp.changes.entry(e.path.to_string()).or_default().remove = true;
            }
        }
    }
}

/// `[packages] remove`: every path a matching package owns (per its database), except paths
/// another remaining package also owns, directories with anything left under them, and what a
/// profile's own `keep` rule matches (a group's keeps — `@docs` keeps licence files — do not
/// hold back a package removed as a unit: its copyright goes with it). A remaining package that
/// depends on a removed one is a note.
pub fn remove_packages(fs: &FinalFs, profile: &Profile, p: &mut Plan) {
    if profile.packages.remove.is_empty() {
        return;
    }
    let dbs = match crate::pkgdb::load(fs) {
        Ok(d) => d,
        Err(e) => return p.failures.push(format!("cannot remove packages: {e}")),
    };
    let names = crate::profile::PackageMatcher::new(&profile.packages.remove);
    let aliases = fs.dir_aliases();
    let own_keeps: Vec<Rule> = profile.keep.iter().filter(|r| !r.origin.starts_with('@')).cloned().collect();
    let mut keep_m = Matcher::new(&own_keeps, aliases);
    let mut any = false;
    for db in &dbs {
        let chosen: Vec<Option<&Rule>> = db.packages.iter().map(|pk| names.which(&pk.name)).collect();
        // Canonical paths that a package staying owns.
        let mut staying: HashSet<String> = HashSet::new();
        for (pk, rule) in db.packages.iter().zip(&chosen) {
            if rule.is_none() {
                staying.extend(pk.paths.iter().filter_map(|x| fs.resolve(x, false)));
            }
        }
        let mut dirs: BTreeMap<String, Rule> = BTreeMap::new();
        for (pk, rule) in db.packages.iter().zip(&chosen) {
            let Some(rule) = rule else { continue };
            any = true;
            let by = Rule {
                pattern: format!("package {}", pk.name),
                origin: rule.origin.clone(),
                follow_copies: rule.follow_copies,
            };
            let mut kept = 0;
            for x in &pk.paths {
                let Some(c) = fs.resolve(x, false).filter(|c| !c.is_empty()) else { continue };
                if staying.contains(&c) || fs.get(&c).is_none() && !fs.is_dir(&c) || p.removed.contains_key(&c) {
                    continue;
                }
                if keep_m.matches(&c).is_some() {
                    kept += 1;
                } else if fs.is_dir(&c) {
                    dirs.insert(c, by.clone());
                } else {
                    p.removed.insert(c, by.clone());
                }
            }
            if kept > 0 {
                p.notes
                    .push(format!("package {}: {kept} of its paths kept by `keep` rules (it stays listed)", pk.name));
            }
        }
        // A package's directory goes only when everything under it goes (deepest first).
        for (d, by) in dirs.iter().rev() {
            let prefix = format!("{d}/");
            let all_gone = fs
                .iter()
                .skip_while(|(q, _, _)| *q <= d.as_str())
                .take_while(|(q, _, _)| q.starts_with(&prefix))
                .all(|(q, _, _)| p.removed.contains_key(q));
            if all_gone {
                p.removed.insert(d.clone(), by.clone());
            }
        }
        let removed_names: HashSet<&str> =
            db.packages.iter().zip(&chosen).filter(|(_, r)| r.is_some()).map(|(pk, _)| pk.name.as_str()).collect();
        for (pk, rule) in db.packages.iter().zip(&chosen) {
            if rule.is_some() {
                continue;
            }
            for d in pk.depends.iter().filter(|d| removed_names.contains(d.as_str())) {
                p.notes.push(format!(
                    "package {} depends on {d}, which is removed (kept anyway: a note, not a refusal)",
                    pk.name
                ));
            }
        }
    }
    if !any {
        p.notes.push("no installed package matches `[packages] remove`".into());
    }
}

/// The databases follow the files: a package none of whose files is left leaves the database
/// (its stanza, its `info/` files), one that lost some no longer lists them
/// ([`crate::pkgdb::Database::edit`]); the edited files get new contents in the layer the
/// container sees them from. `[packages] keep_database` leaves databases as they are.
pub fn follow_databases(fs: &FinalFs, profile: &Profile, p: &mut Plan) {
    if p.removed.is_empty() {
        return;
    }
    if profile.packages.keep_database {
        p.packages.left_as_is = Some("the profile says keep_database = true".into());
        return;
    }
    let dbs = match crate::pkgdb::load(fs) {
        Ok(d) => d,
        Err(e) => return p.failures.push(format!("the package database cannot follow the removed files: {e}")),
    };
    let removed = &p.removed;
    let gone = |x: &str| fs.resolve(x, false).is_some_and(|c| !c.is_empty() && removed.contains_key(&c));
    let mut new_removals: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for db in &dbs {
        let mut drop = std::collections::BTreeSet::new();
        let canon: Vec<Vec<String>> = db
            .packages
            .iter()
            .map(|pk| pk.paths.iter().filter_map(|x| fs.resolve(x, false).filter(|c| !c.is_empty())).collect())
            .collect();
        let mut owners: HashMap<&str, usize> = HashMap::new();
        for c in canon.iter().flatten() {
            *owners.entry(c.as_str()).or_default() += 1;
        }
        if !db.editable() {
            rpm_left_as_is(db, &canon, removed, &mut p.packages, &mut p.notes);
            continue;
        }
        for (i, pk) in db.packages.iter().enumerate() {
            let mut touched = false;
            let mut left = false;
            for c in &canon[i] {
                if removed.contains_key(c) {
                    touched = true;
                } else if owners.get(c.as_str()) == Some(&1) && fs.get(c).is_some_and(|(_, e)| e.kind != Kind::Dir) {
                    // Its own file (a file another package also lists does not keep it).
                    left = true;
                }
            }
            if touched && !left {
                drop.insert(i);
                p.packages.removed.push(pk.name.clone());
            } else if touched {
                p.packages.trimmed.push(pk.name.clone());
            }
        }
        p.packages.before += db.packages.len();
        p.packages.after += db.packages.len() - drop.len();
        let ed = db.edit(&drop, &gone);
        for (path, data) in ed.replace {
            if removed.contains_key(&path) {
                continue;
            }
            if let Some((loc, e)) = fs.get(&path).filter(|(_, e)| e.kind == Kind::File) {
                let c = p.layers[loc.layer].changes.entry(e.path.to_string()).or_default();
                c.content = Some(NewContent::new(data));
            }
        }
        new_removals.extend(ed.remove.into_iter().filter(|x| !removed.contains_key(x)));
    }
    let by = Rule::new("(package database)", "its package is removed");
    for x in &new_removals {
        p.removed.insert(x.clone(), by.clone());
    }
    for (li, layer) in fs.layers.iter().enumerate() {
        for e in layer.entries.iter() {
            if new_removals.contains(e.path) {
                p.layers[li].changes.entry(e.path.to_string()).or_default().remove = true;
            }
        }
    }
}

/// How many package names a note spells out before `and N more`.
const NOTE_NAMES: usize = 5;

/// An rpm database is not edited: the plan says so, and names the packages that lost files
/// (`canon`: each package's paths, canonical), which it goes on listing whole.
fn rpm_left_as_is(
    db: &crate::pkgdb::Database,
    canon: &[Vec<String>],
    removed: &BTreeMap<String, Rule>,
    packages: &mut PackageChanges,
    notes: &mut Vec<String>,
) {
    let path = db.path();
    packages.before += db.packages.len();
    packages.after += db.packages.len();
    if let Some(why) = &db.unreadable {
        packages.left_as_is = Some(format!("{path}: not edited, and not readable: {why}"));
        notes.push(format!(
            "the rpm database {path} is left as it was, and harden cannot say which packages lost files: {why}"
        ));
        return;
    }
    let lost: Vec<String> = db
        .packages
        .iter()
        .zip(canon)
        .filter(|(_, c)| c.iter().any(|c| removed.contains_key(c)))
        .map(|(pk, _)| pk.name.clone())
        .collect();
    packages.left_as_is = Some(format!("{path}: rpm databases are not edited; it still lists the removed files"));
    if lost.is_empty() {
        return;
    }
    let mut names = lost.iter().take(NOTE_NAMES).cloned().collect::<Vec<_>>().join(", ");
    if lost.len() > NOTE_NAMES {
        names.push_str(&format!(" and {} more", lost.len() - NOTE_NAMES));
    }
    notes.push(format!(
        "the rpm database {path} is left as it was (harden does not edit rpm databases): {} package{} lost files it still lists: {names}",
        lost.len(),
        if lost.len() == 1 { "" } else { "s" }
    ));
    packages.lost_files.extend(lost);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tests::{entry, layer};
    use crate::profile::load;

    /// The memo grows with directories, not entries: on a 500k-entry layer, remembering every
    /// path asked was 86 MiB of the strict rebuild's peak.
    #[test]
    fn the_matcher_remembers_directories_not_entries() {
        let rules = vec![Rule::new("/opt/cache", "test")];
        let mut m = Matcher::new(&rules, &[]);
        for d in 0..10 {
            for f in 0..1000 {
                assert!(m.matches(&format!("srv/d{d}/f{f}")).is_none());
                assert!(m.matches(&format!("opt/cache/d{d}/f{f}")).is_some());
            }
        }
        // srv, srv/d*, opt/cache, opt/cache/d*: 22 directories for 20,000 entries.
        assert_eq!(m.memo.len(), 22, "{:?}", m.memo.keys().collect::<Vec<_>>());
    }

    /// The streaming guess flags what strict may change, entry by entry, and nothing else: a
    /// removed path or one under a removed directory (remembered per directory), a setuid file,
    /// a package database; an application's data file is left to upload.
    #[test]
    fn may_change_flags_what_the_profile_may_touch() {
        let strict = load(&["strict".into()]).unwrap();
        let mut watch = MayChange::new(&strict).watcher();
        let mut e = |path: &str, mode: u32| {
            let mut x = entry(path, Kind::File, None);
            x.mode = mode;
            watch(x.view())
        };
        assert!(!e("app/data.bin", 0o644));
        assert!(!e("app/server", 0o755));
        assert!(e("usr/bin/passwd", 0o4755), "setuid");
        assert!(e("var/lib/dpkg/status", 0o644), "a package database");
        assert!(e("var/cache/apt/pkgcache.bin", 0o644), "a cache");
        assert!(e("usr/share/doc/pkg/deep/er/copyright", 0o644), "under a removed directory");
        assert!(e("usr/share/doc/pkg/deep/other", 0o644), "the directory's verdict remembered");
        assert!(!e("usr/share/app/data", 0o644));
        let passthrough = load(&["passthrough".into()]).unwrap();
        let mut none = MayChange::new(&passthrough).watcher();
        let mut suid = entry("usr/bin/passwd", Kind::File, None);
        suid.mode = 0o4755;
        assert!(!none(suid.view()), "a profile that changes nothing flags nothing");
    }

    #[test]
    fn removes_through_usr_merge_and_keeps_databases() {
        let mut suid = entry("usr/bin/su", Kind::File, None);
        suid.mode = 0o4755;
        let fs = FinalFs::build(vec![
            layer(vec![
                entry("bin", Kind::Symlink, Some("usr/bin")),
                entry("usr", Kind::Dir, None),
                entry("usr/bin", Kind::Dir, None),
                entry("usr/bin/dash", Kind::File, None),
                entry("usr/bin/sh", Kind::Symlink, Some("dash")),
                entry("usr/bin/apt-get", Kind::File, None),
                suid,
                entry("var/lib/dpkg/status", Kind::File, None),
                entry("var/lib/apt/lists/deb.debian.org_InRelease", Kind::File, None),
            ]),
            layer(vec![entry("usr/bin/sh", Kind::Symlink, Some("dash"))]),
        ]);
        let p = plan(&fs, &load(&["strict".into()]).unwrap());
        assert!(p.is_removed("usr/bin/sh"));
        assert!(p.is_removed("usr/bin/dash"));
        assert!(p.is_removed("usr/bin/apt-get"));
        assert!(p.is_removed("usr/bin/su"));
        assert!(p.is_removed("var/lib/apt/lists/deb.debian.org_InRelease"));
        assert!(!p.is_removed("var/lib/dpkg/status"));
        // Removed from every layer holding it, not whited out.
        assert!(p.layers[0].changes["usr/bin/sh"].remove);
        assert!(p.layers[1].changes["usr/bin/sh"].remove);
    }

    #[test]
    fn strips_setuid_and_world_writable_but_not_sticky_tmp() {
        let mut s = entry("usr/bin/passwd", Kind::File, None);
        s.mode = 0o4755;
        let mut tmp = entry("tmp", Kind::Dir, None);
        tmp.mode = 0o1777;
        let mut ww = entry("srv/open", Kind::File, None);
        ww.mode = 0o666;
        let fs = FinalFs::build(vec![layer(vec![s, tmp, ww])]);
        let p = plan(&fs, &load(&["baseline".into()]).unwrap());
        assert_eq!(p.layers[0].changes["usr/bin/passwd"].mode, Some(0o755));
        assert_eq!(p.layers[0].changes["srv/open"].mode, Some(0o664));
        assert!(!p.layers[0].changes.contains_key("tmp"));
    }

    #[test]
    fn promotes_a_hardlink_whose_target_is_removed() {
        let fs = FinalFs::build(vec![layer(vec![
            entry("root/.env", Kind::File, None),
            entry("app/a", Kind::HardLink, Some("root/.env")),
            entry("app/b", Kind::HardLink, Some("root/.env")),
        ])]);
        // Kept links (keep wins over the copy rule) take the data.
        let keep_app =
            crate::profile::load_str("t.toml", "name = \"t\"\nextends = \"baseline\"\n[files]\nkeep = [\"/app\"]\n");
        let p = plan(&fs, &keep_app.unwrap());
        let c = &p.layers[0].changes;
        assert_eq!(c["root/.env"].promote_to.as_deref(), Some("app/a"));
        assert!(c["app/a"].remove);
        assert_eq!(c["app/b"].relink_to.as_deref(), Some("app/a"));
    }

    #[test]
    fn hardlinks_to_a_removed_tool_go_with_it_in_any_layer_unless_kept() {
        let mut dash = entry("usr/bin/dash", Kind::File, None);
        dash.mode = 0o755;
        let fs = FinalFs::build(vec![
            layer(vec![
                entry("bin", Kind::Symlink, Some("usr/bin")),
                dash,
                entry("usr/local/bin/mysh", Kind::HardLink, Some("usr/bin/dash")),
                entry("opt/keepme", Kind::HardLink, Some("usr/bin/dash")),
            ]),
            layer(vec![entry("srv/sh2", Kind::HardLink, Some("usr/bin/dash"))]),
        ]);
        let profile = crate::profile::load_str(
            "t.toml",
            "name = \"t\"\nextends = \"strict\"\n[files]\nkeep = [\"/opt/keepme\"]\n",
        )
        .unwrap();
        let p = plan(&fs, &profile);
        let copy = &p.removed["usr/local/bin/mysh"];
        assert_eq!(copy.pattern, "copy of /usr/bin/dash");
        assert!(copy.origin.contains("@shells"), "{copy:?}");
        assert!(p.removed["srv/sh2"].pattern.starts_with("copy of /usr/bin/dash"));
        assert!(p.layers[1].changes["srv/sh2"].remove);
        assert!(!p.is_removed("opt/keepme"), "keep wins");
        assert_eq!(p.layers[0].changes["usr/bin/dash"].promote_to.as_deref(), Some("opt/keepme"));
    }

    #[test]
    fn escaping_names_are_normalised_even_by_passthrough() {
        let mut evil = entry("etc/cron.d/x", Kind::File, None);
        evil.escapes = true; // stored as ../../etc/cron.d/x
        let fs = FinalFs::build(vec![layer(vec![evil]), layer(vec![entry("app", Kind::File, None)])]);
        let p = plan(&fs, &load(&["passthrough".into()]).unwrap());
        assert!(p.layers[0].changes["etc/cron.d/x"].normalize);
        assert!(!p.layers[0].changes["etc/cron.d/x"].remove);
        assert!(p.layers[1].is_unchanged());
        assert!(p.notes.iter().any(|n| n.contains("leaves the root")), "{:?}", p.notes);
    }

    #[test]
    fn passthrough_changes_nothing() {
        let mut s = entry("usr/bin/passwd", Kind::File, None);
        s.mode = 0o4755;
        let fs = FinalFs::build(vec![layer(vec![s])]);
        let p = plan(&fs, &load(&["passthrough".into()]).unwrap());
        assert!(p.layers.iter().all(LayerPlan::is_unchanged));
    }

    /// A plan with only `passes` run, in order.
    fn run(fs: &FinalFs, profile: &Profile, passes: &[Pass]) -> Plan {
        let mut p = Plan { layers: vec![LayerPlan::default(); fs.layers.len()], ..Plan::default() };
        for pass in passes {
            pass(fs, profile, &mut p);
        }
        p
    }

    fn profile(text: &str) -> Profile {
        crate::profile::load_str("t.toml", text).unwrap()
    }

    #[test]
    fn passes_select_removals_and_keep_directories_keep_wins() {
        let fs = FinalFs::build(vec![layer(vec![
            entry("opt", Kind::Dir, None),
            entry("opt/tool", Kind::Dir, None),
            entry("opt/tool/bin", Kind::File, None),
            entry("opt/tool/licence", Kind::File, None),
        ])]);
        let pr = profile("name = \"t\"\n[files]\nremove = [\"/opt\"]\nkeep = [\"/opt/tool/licence\"]\n");
        let p = run(&fs, &pr, &[select_removals, keep_directories]);
        assert!(p.is_removed("opt/tool/bin"));
        assert!(!p.is_removed("opt/tool/licence"));
        assert!(!p.is_removed("opt/tool") && !p.is_removed("opt"), "a kept path keeps its directories");
        assert!(p.layers[0].is_unchanged(), "selection alone marks no layer");
    }

    #[test]
    fn pass_hand_over_writable_rewrites_owners_where_they_are_and_records_missing_directories() {
        let mut passwd = entry("etc/passwd", Kind::File, None);
        passwd.prefix = Some(b"root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n".to_vec().into());
        let mut log = entry("var/log/nginx/error.log", Kind::File, None);
        (log.uid, log.gid) = (33, 33);
        let fs = FinalFs::build(vec![
            layer(vec![
                passwd,
                entry("var", Kind::Dir, None),
                entry("var/lib", Kind::Dir, None),
                entry("var/lib/nginx", Kind::Dir, None),
                entry("var/log", Kind::Dir, None),
                entry("var/log/nginx", Kind::Dir, None),
                entry("var/run", Kind::Symlink, Some("/run")),
                entry("run", Kind::Dir, None),
                entry("etc/nginx.conf", Kind::File, None),
            ]),
            layer(vec![entry("var/lib/nginx/body", Kind::Dir, None), log]),
        ]);
        let text = "[config]\nuser = \"web\"\n[runtime]\nwritable = [\"/var/lib/nginx\", \"/var/log/nginx\", \
                    \"/var/cache/nginx\", \"/var/run\", \"/etc/nginx.conf\"]\n";
        let p = run(&fs, &profile(text), &[hand_over_writable]);
        // Each entry changes owner in the layer that holds it; nothing already the user's changes.
        assert_eq!(p.layers[0].changes["var/lib/nginx"].owner, Some((33, 33)));
        assert_eq!(p.layers[1].changes["var/lib/nginx/body"].owner, Some((33, 33)));
        assert_eq!(p.layers[0].changes["var/log/nginx"].owner, Some((33, 33)));
        assert!(!p.layers[1].changes.contains_key("var/log/nginx/error.log"), "already the user's");
        assert!(!p.layers[0].changes.contains_key("var/lib"), "the parents stay");
        assert_eq!(p.layers[0].changes["run"].owner, Some((33, 33)), "through the /var/run symlink");
        let got: Vec<(&str, bool, usize)> =
            p.handed_over.iter().map(|h| (h.path.as_str(), h.created, h.entries)).collect();
        assert_eq!(
            got,
            [("var/lib/nginx", false, 2), ("var/log/nginx", false, 1), ("var/cache/nginx", true, 0), ("run", false, 1)]
        );
        assert!(p.notes.iter().any(|n| n.contains("/etc/nginx.conf is not a directory")), "{:?}", p.notes);
        // Root, or no user: nothing is handed over.
        let p = run(&fs, &profile("[runtime]\nwritable = [\"/var/lib/nginx\"]\n"), &[hand_over_writable]);
        assert!(p.handed_over.is_empty() && p.layers.iter().all(LayerPlan::is_unchanged));
    }

    #[test]
    fn pass_keep_cross_layer_link_targets_keeps_and_notes() {
        let fs = FinalFs::build(vec![
            layer(vec![entry("root/.env", Kind::File, None)]),
            layer(vec![entry("app/env", Kind::HardLink, Some("root/.env"))]),
        ]);
        let pr = load(&["baseline".into()]).unwrap();
        let p = run(&fs, &pr, &[select_removals]);
        assert!(p.is_removed("root/.env"));
        let p = run(&fs, &pr, &[select_removals, keep_cross_layer_link_targets]);
        assert!(!p.is_removed("root/.env"));
        assert!(p.notes[0].contains("hardlinked from /app/env in a higher layer"), "{:?}", p.notes);
    }

    #[test]
    fn pass_mark_layers_drops_from_every_layer() {
        let fs = FinalFs::build(vec![
            layer(vec![entry("etc/secret.pem", Kind::File, None)]),
            layer(vec![entry("etc/secret.pem", Kind::File, None), entry("app", Kind::File, None)]),
        ]);
        let mut p = Plan { layers: vec![LayerPlan::default(); 2], ..Plan::default() };
        p.removed.insert("etc/secret.pem".into(), Rule::new("x", "t"));
        mark_layers(&fs, &load(&["passthrough".into()]).unwrap(), &mut p);
        assert!(p.layers[0].changes["etc/secret.pem"].remove && p.layers[1].changes["etc/secret.pem"].remove);
        assert!(!p.layers[1].changes.contains_key("app"));
    }

    #[test]
    fn pass_fix_modes_honours_setuid_allow_and_skips_removed() {
        let mut su = entry("usr/bin/su", Kind::File, None);
        su.mode = 0o4755;
        let mut ping = entry("usr/bin/ping", Kind::File, None);
        ping.mode = 0o4755;
        ping.caps = true;
        let fs = FinalFs::build(vec![layer(vec![su, ping])]);
        let pr = profile("name = \"t\"\nextends = \"baseline\"\n[files]\nsetuid_allow = [\"/usr/bin/ping\"]\n");
        let p = run(&fs, &pr, &[fix_modes]);
        assert_eq!(p.setuid_stripped, ["usr/bin/su"]);
        assert_eq!(p.caps_stripped, ["usr/bin/ping"]);
        assert_eq!(p.layers[0].changes["usr/bin/ping"].mode, None, "allowed: bits kept");
        assert!(p.layers[0].changes["usr/bin/ping"].strip_caps);
        let mut removed = Plan { layers: vec![LayerPlan::default()], ..Plan::default() };
        removed.removed.insert("usr/bin/su".into(), Rule::new("x", "t"));
        fix_modes(&fs, &pr, &mut removed);
        assert!(!removed.setuid_stripped.contains(&"usr/bin/su".to_string()), "a removed file is not also chmodded");
    }

    #[test]
    fn entries_written_through_a_symlinked_parent_are_changed_under_their_stored_name() {
        let mut sh = entry("bin/sush", Kind::File, None);
        sh.mode = 0o4755;
        let fs = FinalFs::build(vec![
            layer(vec![entry("usr/bin", Kind::Dir, None), entry("bin", Kind::Symlink, Some("usr/bin"))]),
            layer(vec![sh, entry("bin/secret.pem", Kind::File, None)]),
        ]);
        assert!(fs.get("usr/bin/sush").is_some(), "the runtime writes it where the link leads");
        let pr = profile("name = \"t\"\nextends = \"baseline\"\n");
        let mut p = run(&fs, &pr, &[fix_modes]);
        assert_eq!(p.setuid_stripped, ["usr/bin/sush"]);
        assert_eq!(p.layers[1].changes["bin/sush"].mode, Some(0o755), "the rewrite finds entries by stored name");
        p.removed.insert(
            "usr/bin/secret.pem".into(),
            Rule { pattern: "x".into(), origin: "t".into(), follow_copies: Default::default() },
        );
        mark_layers(&fs, &pr, &mut p);
        assert!(p.layers[1].changes["bin/secret.pem"].remove);
    }

    #[test]
    fn plan_is_the_passes_in_order() {
        let fs = FinalFs::build(vec![layer(vec![
            entry("root/.env", Kind::File, None),
            entry("app/a", Kind::HardLink, Some("root/.env")),
        ])]);
        let pr = load(&["strict".into()]).unwrap();
        let all: Vec<Pass> = PASSES.iter().map(|(_, p)| *p).collect();
        let by_hand = run(&fs, &pr, &all);
        let planned = plan(&fs, &pr);
        assert_eq!(serde_json::to_value(&by_hand).unwrap(), serde_json::to_value(&planned).unwrap());
    }

    #[test]
    fn byte_identical_copies_and_busybox_under_other_names_go_with_the_removed_tool() {
        let mut busybox = vec![0u8; 100_000];
        busybox[70_000..70_009].copy_from_slice(b"BusyBox v");
        let mut other_busybox = busybox.clone();
        other_busybox.push(1); // another build: another size
        let t = tar_of(
            &[
                ("bin/dash", 0o755, b"dash-binary"),
                ("opt/mysh", 0o755, b"dash-binary"),      // a copy under another name
                ("opt/same-size", 0o755, b"other-bytes"), // same size, other bytes: hashed, kept
                ("opt/kept-copy", 0o755, b"dash-binary"), // a copy, but kept
                ("opt/data", 0o644, b"dash-binary"),      // not executable: not a tool
                ("bin/busybox", 0o755, &busybox),
                ("usr/local/bin/toolbox", 0o755, &other_busybox),
                ("usr/local/bin/not-busybox", 0o755, &[0u8; 100]),
            ],
            &[],
        );
        let idx = crate::scan::scan_layer(&t[..], None, None, &crate::layer::Limits::default()).unwrap();
        let flagged: Vec<&str> = idx.entries.iter().filter(|e| e.busybox).map(|e| e.path).collect();
        assert_eq!(flagged, vec!["bin/busybox", "usr/local/bin/toolbox"]);
        let fs = FinalFs::build(vec![idx]);
        let text = "name = \"t\"\nextends = \"strict\"\n[files]\nkeep = [\"/opt/kept-copy\"]\n";
        let profile = crate::profile::load_str("t.toml", text).unwrap();
        let first = plan(&fs, &profile);
        let check = copy_check(&fs, &first, &profile);
        let mut names: Vec<&str> = check.iter().map(|l| fs.entry(*l).path).collect();
        names.sort();
        // Hashed: the removed tools of a size some candidate has, and those candidates only.
        assert_eq!(names, vec!["bin/dash", "opt/mysh", "opt/same-size"]);
        let wanted = check.iter().map(|l| l.entry).collect();
        let hashes = crate::scan::hash_entries(&t[..], &wanted, &crate::layer::Limits::default()).unwrap();
        let hashes = hashes.into_iter().map(|(entry, d)| (Loc { layer: 0, entry }, d)).collect();
        let p = plan_with(&fs, &profile, &copies(&fs, &first, &hashes));
        assert_eq!(p.removed["opt/mysh"].pattern, "copy of /bin/dash");
        assert!(p.removed["opt/mysh"].origin.contains("@shells"), "{:?}", p.removed["opt/mysh"]);
        assert_eq!(p.removed["usr/local/bin/toolbox"].pattern, "copy of /bin/busybox (busybox)");
        for kept in ["opt/same-size", "opt/kept-copy", "opt/data", "usr/local/bin/not-busybox"] {
            assert!(!p.is_removed(kept), "{kept}");
        }
        assert!(p.layers[0].changes["opt/mysh"].remove);
    }

    /// A tar of regular files `(path, mode, bytes)`, then hardlinks `(path, target)`.
    fn tar_of(files: &[(&str, u32, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, mode, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_mode(*mode);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
        for (path, target) in links {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, path, target).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// One layer ([`tar_of`]) scanned and planned as the rebuild plans it: the plan,
    /// [`copy_check`]'s candidates hashed by a second read, and the plan again with the copies
    /// found.
    fn plan_layer(files: &[(&str, u32, &[u8])], links: &[(&str, &str)], profile: &Profile) -> (FinalFs, Plan) {
        let t = tar_of(files, links);
        let idx = crate::scan::scan_layer(&t[..], None, None, &crate::layer::Limits::default()).unwrap();
        let fs = FinalFs::build(vec![idx]);
        let first = plan(&fs, profile);
        let check = copy_check(&fs, &first, profile);
        if check.is_empty() {
            return (fs, first);
        }
        let wanted = check.iter().map(|l| l.entry).collect();
        let hashes = crate::scan::hash_entries(&t[..], &wanted, &crate::layer::Limits::default()).unwrap();
        let hashes = hashes.into_iter().map(|(entry, d)| (Loc { layer: 0, entry }, d)).collect();
        let p = plan_with(&fs, profile, &copies(&fs, &first, &hashes));
        (fs, p)
    }

    #[test]
    fn a_cache_file_identical_to_an_installed_binary_takes_nothing_with_it() {
        // debootstrap's .deb cache, one file of it byte-identical to the interpreter (issue 20).
        let python: &[u8] = b"\x7fELF python3.11 interpreter bytes";
        let files: &[(&str, u32, &[u8])] = &[
            ("usr/bin/python3.11", 0o755, python),
            ("var/cache/apt/archives/python3.11-minimal_fake_amd64.deb", 0o755, python),
            ("usr/share/doc/python3.11/examples/run", 0o755, b"#!/bin/sh\nexec python3\n"),
            ("usr/local/bin/run", 0o755, b"#!/bin/sh\nexec python3\n"),
        ];
        for name in ["baseline", "debian", "strict"] {
            let pr = load(&[name.into()]).unwrap();
            let (fs, p) = plan_layer(files, &[], &pr);
            assert!(p.is_removed("var/cache/apt/archives/python3.11-minimal_fake_amd64.deb"), "{name}");
            assert!(!p.is_removed("usr/bin/python3.11"), "{name}: {:?}", p.removed.get("usr/bin/python3.11"));
            assert!(!p.is_removed("usr/local/bin/run"), "{name}: a document's copy stays");
            assert!(p.copy_of.is_empty(), "{name}: {:?}", p.copy_of);
            // Nothing even needs hashing: no removal here follows copies.
            assert!(copy_check(&fs, &plan(&fs, &pr), &pr).is_empty(), "{name}");
        }
    }

    #[test]
    fn a_hardlink_of_a_document_stays_and_takes_the_data() {
        let pr = load(&["debian".into()]).unwrap();
        let (_, p) = plan_layer(
            &[("usr/share/doc/app/README", 0o644, b"read me"), ("usr/share/doc/app/examples/tool", 0o755, b"x")],
            &[("app/README", "usr/share/doc/app/README"), ("usr/local/bin/tool", "usr/share/doc/app/examples/tool")],
            &pr,
        );
        assert!(p.is_removed("usr/share/doc/app/README") && p.is_removed("usr/share/doc/app/examples/tool"));
        for stays in ["app/README", "usr/local/bin/tool"] {
            assert!(!p.is_removed(stays), "{stays}: {:?}", p.removed.get(stays));
        }
        let c = &p.layers[0].changes;
        assert_eq!(c["usr/share/doc/app/README"].promote_to.as_deref(), Some("app/README"));
        assert_eq!(c["usr/share/doc/app/examples/tool"].promote_to.as_deref(), Some("usr/local/bin/tool"));
    }

    #[test]
    fn a_copy_of_a_shell_goes_and_the_report_names_the_removal_it_followed() {
        let pr = load(&["strict".into()]).unwrap();
        let (fs, p) = plan_layer(
            &[
                ("bin/dash", 0o755, b"dash-binary"),
                ("usr/local/bin/helper", 0o755, b"dash-binary"),
                ("usr/share/misc/dash.txt", 0o644, b"dash-binary"), // not executable: not a program
            ],
            &[("usr/local/sbin/rescue", "bin/dash")],
            &pr,
        );
        for gone in ["usr/local/bin/helper", "usr/local/sbin/rescue"] {
            assert_eq!(p.removed[gone].pattern, "copy of /bin/dash", "{gone}");
            assert!(p.removed[gone].origin.contains("@shells"), "{:?}", p.removed[gone]);
            assert_eq!(p.copy_of[gone], "bin/dash");
        }
        assert!(!p.is_removed("usr/share/misc/dash.txt"));
        let report = crate::report::PlanReport::new(String::new(), &p, &[fs.layers[0].diff_id.clone()]);
        let v = serde_json::to_value(&report.removed).unwrap();
        let helper = v.as_array().unwrap().iter().find(|r| r["path"] == "/usr/local/bin/helper").unwrap();
        assert_eq!(helper["copy_of"]["path"], "/bin/dash", "{helper}");
        assert_eq!(helper["copy_of"]["rule"], "/bin/dash", "{helper}");
        assert!(helper["copy_of"]["origin"].as_str().unwrap().contains("@shells"), "{helper}");
        let dash = v.as_array().unwrap().iter().find(|r| r["path"] == "/bin/dash").unwrap();
        assert!(dash.get("copy_of").is_none(), "{dash}");
    }

    #[test]
    fn a_copy_of_a_private_key_goes_whatever_its_mode() {
        let key: &[u8] = b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        let pr = load(&["baseline".into()]).unwrap();
        let (_, p) = plan_layer(
            &[
                ("root/.ssh/id_rsa", 0o600, key),
                ("app/deploy.key", 0o644, key),
                (
                    "app/other.key",
                    0o644,
                    b"-----BEGIN OPENSSH PRIVATE KEY-----\nBBBB\n-----END OPENSSH PRIVATE KEY-----\n",
                ),
            ],
            &[("srv/key-link", "root/.ssh/id_rsa")],
            &pr,
        );
        assert!(p.is_removed("root/.ssh/id_rsa"));
        for gone in ["app/deploy.key", "srv/key-link"] {
            assert_eq!(p.removed[gone].pattern, "copy of /root/.ssh/id_rsa", "{gone}");
            assert!(p.removed[gone].origin.contains("@secrets"), "{:?}", p.removed[gone]);
        }
        assert!(!p.is_removed("app/other.key"), "same size, other bytes");
    }

    #[test]
    fn a_package_removed_whole_takes_no_copy_of_its_documents() {
        // strict removes the dash package whole (@shells' packages follow executables): its
        // copyright goes, the byte-identical copyright of another package stays.
        let status = "Package: dash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n\
Package: other\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n";
        let (_, p) = plan_layer(
            &[
                ("var/lib/dpkg/status", 0o644, status.as_bytes()),
                ("var/lib/dpkg/info/dash.list", 0o644, b"/bin/dash\n/usr/share/doc/dash/copyright\n"),
                ("var/lib/dpkg/info/other.list", 0o644, b"/usr/share/doc/other/copyright\n"),
                ("bin/dash", 0o755, b"dash-binary"),
                ("usr/share/doc/dash/copyright", 0o644, b"GPL-2"),
                ("usr/share/doc/other/copyright", 0o644, b"GPL-2"),
            ],
            &[],
            &load(&["strict".into()]).unwrap(),
        );
        assert!(p.is_removed("bin/dash"));
        assert_eq!(p.removed["usr/share/doc/dash/copyright"].pattern, "package dash");
        assert!(!p.is_removed("usr/share/doc/other/copyright"), "a copyright file is not a program");
        assert!(p.copy_of.is_empty(), "{:?}", p.copy_of);
    }

    fn db_file(path: &str, text: &str) -> crate::scan::EntryInfo {
        let mut e = entry(path, Kind::File, None);
        e.size = text.len() as u64;
        e.prefix = Some(text.as_bytes().to_vec().into_boxed_slice());
        e
    }

    /// sudo and login share /usr/share/doc and /etc/pam.d; both list /etc/shared.conf.
    fn dpkg_image() -> FinalFs {
        let status = "Package: sudo\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.9\n\
Conffiles:\n /etc/sudoers abc\n\n\
Package: login\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.13\nPre-Depends: sudo\n\n";
        FinalFs::build(vec![
            layer(vec![
                entry("etc", Kind::Dir, None),
                entry("etc/pam.d", Kind::Dir, None),
                entry("etc/pam.d/sudo", Kind::File, None),
                entry("etc/pam.d/login", Kind::File, None),
                entry("etc/sudoers", Kind::File, None),
                entry("etc/shared.conf", Kind::File, None),
                entry("usr", Kind::Dir, None),
                entry("usr/bin", Kind::Dir, None),
                entry("usr/bin/sudo", Kind::File, None),
                entry("usr/bin/login", Kind::File, None),
                entry("usr/share/doc/sudo", Kind::Dir, None),
                entry("usr/share/doc/sudo/copyright", Kind::File, None),
                entry("bin", Kind::Symlink, Some("usr/bin")),
                db_file("var/lib/dpkg/status", status),
                db_file("var/lib/dpkg/info/sudo.list", "/.\n/etc\n/etc/pam.d\n/etc/pam.d/sudo\n/etc/sudoers\n/etc/shared.conf\n/usr\n/usr/bin\n/usr/bin/sudo\n/usr/share/doc/sudo\n/usr/share/doc/sudo/copyright\n"),
                db_file("var/lib/dpkg/info/sudo.md5sums", "aa  usr/bin/sudo\nbb  etc/pam.d/sudo\n"),
                entry("var/lib/dpkg/info/sudo.postinst", Kind::File, None),
                db_file("var/lib/dpkg/info/login.list", "/.\n/bin\n/bin/login\n/etc\n/etc/pam.d\n/etc/pam.d/login\n/etc/shared.conf\n"),
            ]),
            // A higher layer holds its own copy of the status file: that one is edited.
            layer(vec![db_file("var/lib/dpkg/status", status), entry("app", Kind::File, None)]),
        ])
    }

    #[test]
    fn pass_remove_packages_spares_shared_paths_and_notes_dependents() {
        let fs = dpkg_image();
        let pr = profile("name = \"t\"\n[packages]\nremove = [\"su*\"]\n");
        let p = plan(&fs, &pr);
        assert!(p.failures.is_empty(), "{:?}", p.failures);
        for gone in
            ["usr/bin/sudo", "etc/pam.d/sudo", "etc/sudoers", "usr/share/doc/sudo", "usr/share/doc/sudo/copyright"]
        {
            assert!(p.is_removed(gone), "{gone}");
        }
        assert_eq!(p.removed["usr/bin/sudo"].pattern, "package sudo");
        for stays in ["etc/shared.conf", "etc/pam.d", "etc", "usr/bin", "usr"] {
            assert!(!p.is_removed(stays), "{stays}: shared with login, or not empty");
        }
        assert!(p.notes.iter().any(|n| n.contains("package login depends on sudo")), "{:?}", p.notes);
        // The database follows: sudo's stanza and info files go, in the layer holding them.
        assert_eq!(p.packages.removed, ["sudo"]);
        assert_eq!((p.packages.before, p.packages.after), (2, 1));
        assert!(
            p.is_removed("var/lib/dpkg/info/sudo.postinst")
                && p.layers[0].changes["var/lib/dpkg/info/sudo.list"].remove
        );
        let status = p.layers[1].changes["var/lib/dpkg/status"].content.as_ref().unwrap();
        assert_eq!(
            &*status.data,
            b"Package: login\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.13\nPre-Depends: sudo\n\n"
        );
        assert!(!p.layers[0].changes.contains_key("var/lib/dpkg/status"), "the shadowed copy is not edited");
    }

    #[test]
    fn pass_follow_databases_trims_through_usr_merge_and_keep_database_leaves_it() {
        let fs = dpkg_image();
        // Path rules only: /usr/bin/login (listed as /bin/login) and sudo's pam file go.
        let pr =
            profile("name = \"t\"\n[files]\nremove = [\"/bin/login\", \"/etc/pam.d/sudo\", \"/etc/shared.conf\"]\n");
        let p = plan(&fs, &pr);
        assert_eq!(p.packages.trimmed, ["sudo", "login"]);
        assert!(p.packages.removed.is_empty(), "login keeps /etc/pam.d/login");
        let list = &p.layers[0].changes["var/lib/dpkg/info/login.list"].content.as_ref().unwrap().data;
        assert_eq!(&**list, b"/.\n/bin\n/etc\n/etc/pam.d\n/etc/pam.d/login\n");
        let md5 = &p.layers[0].changes["var/lib/dpkg/info/sudo.md5sums"].content.as_ref().unwrap().data;
        assert_eq!(&**md5, b"aa  usr/bin/sudo\n");
        let pr = profile("name = \"t\"\n[files]\nremove = [\"/bin/login\"]\n[packages]\nkeep_database = true\n");
        let p = plan(&fs, &pr);
        assert!(p.layers.iter().all(|l| l.changes.values().all(|c| c.content.is_none())));
        assert!(p.packages.left_as_is.is_some());
    }

    #[test]
    fn pass_remove_packages_keep_wins_and_a_hostile_database_fails_the_plan() {
        let fs = dpkg_image();
        let pr = profile("name = \"t\"\n[files]\nkeep = [\"/etc/sudoers\"]\n[packages]\nremove = [\"sudo\"]\n");
        let p = plan(&fs, &pr);
        assert!(!p.is_removed("etc/sudoers") && p.is_removed("usr/bin/sudo"));
        assert_eq!(p.packages.trimmed, ["sudo"], "a kept file keeps the package listed");
        let bad = FinalFs::build(vec![layer(vec![db_file("var/lib/dpkg/status", "Package: a\n\n junk\n")])]);
        let p = plan(&bad, &pr);
        assert_eq!(p.failures, ["cannot remove packages: /var/lib/dpkg/status:3: continuation line outside a field"]);
    }

    fn rpm_image(db: Vec<u8>) -> FinalFs {
        let mut e = entry("var/lib/rpm/rpmdb.sqlite", Kind::File, None);
        e.size = db.len() as u64;
        e.prefix = Some(db.into_boxed_slice());
        FinalFs::build(vec![layer(vec![
            entry("usr", Kind::Dir, None),
            entry("usr/bin", Kind::Dir, None),
            entry("usr/bin/bash", Kind::File, None),
            entry("usr/bin/sudo", Kind::File, None),
            entry("usr/bin/ls", Kind::File, None),
            e,
        ])])
    }

    #[test]
    fn pass_follow_databases_leaves_rpm_as_is_and_names_packages_that_lost_files() {
        use crate::pkgdb::rpm::{header::tests::blob, sqlite::tests::build};
        let db = build(&[
            blob("bash", None, &["/usr/bin/bash"]),
            blob("sudo", Some(1), &["/usr/bin/sudo", "/etc/sudoers"]),
            blob("coreutils", None, &["/usr/bin/ls"]),
        ]);
        let fs = rpm_image(db);
        let pr = profile("name = \"t\"\n[files]\nremove = [\"/usr/bin/bash\", \"/usr/bin/sudo\"]\n");
        let p = plan(&fs, &pr);
        assert!(p.failures.is_empty(), "{:?}", p.failures);
        assert_eq!(p.packages.lost_files, ["bash", "sudo"]);
        assert!(p.packages.removed.is_empty() && p.packages.trimmed.is_empty(), "rpm is never edited");
        assert_eq!((p.packages.before, p.packages.after), (3, 3));
        assert!(p.layers.iter().all(|l| l.changes.values().all(|c| c.content.is_none())));
        assert!(!p.is_removed("var/lib/rpm/rpmdb.sqlite"));
        assert!(p
            .packages
            .left_as_is
            .as_deref()
            .unwrap()
            .starts_with("/var/lib/rpm/rpmdb.sqlite: rpm databases are not edited"));
        assert!(
            p.notes.iter().any(|n| n.ends_with("2 packages lost files it still lists: bash, sudo")),
            "{:?}",
            p.notes
        );
        // A database harden cannot read is a note naming it, not a failure.
        let fs = rpm_image(b"SQLite format 3\0 but not really".to_vec());
        let p = plan(&fs, &pr);
        assert!(p.failures.is_empty(), "{:?}", p.failures);
        assert!(p.is_removed("usr/bin/bash"));
        let note = p.notes.iter().find(|n| n.contains("/var/lib/rpm/rpmdb.sqlite")).unwrap();
        assert!(
            note.contains("cannot say which packages lost files: /var/lib/rpm/rpmdb.sqlite: not an SQLite"),
            "{note}"
        );
    }
}
