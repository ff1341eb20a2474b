//! Plan: apply a profile's file rules to the final filesystem and say, per layer, which entries
//! are removed or changed — and so which layers change at all. Paths are matched as the
//! container sees them, through directory symlinks (`/bin/sh` also names `usr/bin/sh` on
//! usr-merged Debian). A removed path is dropped from every layer that holds it, so the image
//! shrinks; no whiteouts are added.
//!
//! Owns: the decisions. Must not: read or write layer bytes.

use crate::fs::FinalFs;
use crate::layer::tar::{split_parent, Kind};
use crate::profile::{Profile, Rule, RuleSet};
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

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub layers: Vec<LayerPlan>,
    /// Every removed path of the final image (canonical), with the rule that removed it.
    pub removed: BTreeMap<String, Rule>,
    pub setuid_stripped: Vec<String>,
    pub caps_stripped: Vec<String>,
    pub world_writable_fixed: Vec<String>,
    /// Things the plan chose not to do, and why.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn is_removed(&self, path: &str) -> bool {
        self.removed.contains_key(path)
    }
}

fn parent(p: &str) -> &str {
    split_parent(p).0
}

/// The names a canonical path is visible under: itself, and through each directory symlink.
fn visible_names(path: &str, aliases: &[(String, String)]) -> Vec<String> {
    let mut names = vec![path.to_string()];
    for (link, target) in aliases {
        if let Some(rest) = path.strip_prefix(target.as_str()).and_then(|r| r.strip_prefix('/')) {
            names.push(format!("{link}/{rest}"));
        }
    }
    names
}

/// Self-or-ancestor matching with memoisation by canonical directory (also used by the audit).
pub(crate) struct Matcher<'a> {
    set: RuleSet<'a>,
    aliases: &'a [(String, String)],
    memo: HashMap<String, Option<&'a Rule>>,
}

impl<'a> Matcher<'a> {
    pub(crate) fn new(rules: &'a [Rule], aliases: &'a [(String, String)]) -> Self {
        Matcher { set: RuleSet::new(rules), aliases, memo: HashMap::new() }
    }
    pub(crate) fn matches(&mut self, path: &str) -> Option<&'a Rule> {
        if path.is_empty() || self.set.is_empty() {
            return None;
        }
        if let Some(r) = self.memo.get(path) {
            return *r;
        }
        let own = visible_names(path, self.aliases).iter().find_map(|n| self.set.which(n));
        let r = own.or_else(|| self.matches(parent(path)));
        self.memo.insert(path.to_string(), r);
        r
    }
}

pub fn plan(fs: &FinalFs, profile: &Profile) -> Plan {
    let aliases = fs.dir_aliases();
    let mut remove_m = Matcher::new(&profile.remove, &aliases);
    let mut keep_m = Matcher::new(&profile.keep, &aliases);
    let mut allow_m = Matcher::new(&profile.setuid_allow, &aliases);

    let mut removed: BTreeMap<String, Rule> = BTreeMap::new();
    let mut kept: Vec<String> = Vec::new();
    for (path, _, _) in fs.iter() {
        if keep_m.matches(path).is_some() {
            kept.push(path.to_string());
        } else if let Some(rule) = remove_m.matches(path) {
            removed.insert(path.to_string(), rule.clone());
        }
    }
    // A hardlink is the same file under another name (e.g. /usr/local/bin/mysh linked to
    // /usr/bin/dash): when a rule removes one name of it, every other name that is not kept goes
    // with it, reported as `copy of /usr/bin/dash`.
    let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (path, _, e) in fs.iter() {
        if let (Kind::HardLink, Some(t)) = (e.kind, &e.link) {
            names.entry(t.as_str()).or_default().push(path);
        }
    }
    let kept_set: HashSet<&str> = kept.iter().map(String::as_str).collect();
    let mut copies = Vec::new();
    for (target, links) in &names {
        let group: Vec<&str> = std::iter::once(*target).chain(links.iter().copied()).collect();
        let Some((by, rule)) = group.iter().find_map(|p| removed.get(*p).map(|r| (*p, r))) else { continue };
        for p in group.iter().filter(|p| !removed.contains_key(**p) && !kept_set.contains(**p)) {
            let copy = Rule { pattern: format!("copy of /{by}"), origin: rule.origin.clone() };
            copies.push((p.to_string(), copy));
        }
    }
    removed.extend(copies);
    // A kept path keeps its directories.
    for k in &kept {
        let mut p = parent(k);
        while !p.is_empty() && removed.remove(p).is_some() {
            p = parent(p);
        }
    }

    let mut notes = Vec::new();
    // Hardlinks whose removed target lives in a lower layer cannot be promoted while
    // streaming (the data is in another blob): keep the target instead.
    for (path, loc, e) in fs.iter() {
        if e.kind == Kind::HardLink && !removed.contains_key(path) {
            if let Some(t) = &e.link {
                let same_layer = fs.layers[loc.layer].entries.iter().any(|x| x.path == *t && x.kind == Kind::File);
                if removed.contains_key(t) && !same_layer {
                    removed.remove(t);
                    notes.push(format!("kept /{t}: hardlinked from /{path} in a higher layer"));
                }
            }
        }
    }

    let mut layers: Vec<LayerPlan> = vec![LayerPlan::default(); fs.layers.len()];
    let mut escaping = 0;
    for (li, layer) in fs.layers.iter().enumerate() {
        for e in &layer.entries {
            if removed.contains_key(&e.path) {
                layers[li].changes.entry(e.path.clone()).or_default().remove = true;
            }
            // Never pass an escaping name on: the layer is rewritten with the name normalised.
            if e.escapes {
                layers[li].changes.entry(e.path.clone()).or_default().normalize = true;
                escaping += 1;
            }
        }
    }
    if escaping > 0 {
        notes.push(format!(
            "{escaping} entries whose stored name leaves the root (../ or absolute) are rewritten with the name \
             normalised inside it"
        ));
    }

    let mut setuid_stripped = Vec::new();
    let mut caps_stripped = Vec::new();
    let mut world_writable_fixed = Vec::new();
    for (path, loc, e) in fs.iter() {
        if removed.contains_key(path) {
            continue;
        }
        let mut mode = e.mode;
        if profile.strip_setuid
            && matches!(e.kind, Kind::File | Kind::HardLink)
            && e.mode & 0o6000 != 0
            && allow_m.matches(path).is_none()
        {
            mode &= !0o6000;
            setuid_stripped.push(path.to_string());
        }
        let sticky_dir = e.kind == Kind::Dir && e.mode & 0o1000 != 0;
        if profile.fix_world_writable && matches!(e.kind, Kind::File | Kind::Dir) && e.mode & 0o002 != 0 && !sticky_dir
        {
            mode &= !0o002;
            world_writable_fixed.push(path.to_string());
        }
        let strip_caps = profile.strip_capabilities && e.caps;
        if strip_caps {
            caps_stripped.push(path.to_string());
        }
        if mode != e.mode || strip_caps {
            let c = layers[loc.layer].changes.entry(path.to_string()).or_default();
            if mode != e.mode {
                c.mode = Some(mode);
            }
            c.strip_caps = strip_caps;
        }
    }

    // Same-layer hardlinks to removed targets: the first kept link takes the data.
    for (li, layer) in fs.layers.iter().enumerate() {
        let mut promoted: HashMap<String, String> = HashMap::new();
        let mut seen_removed: HashSet<&str> = HashSet::new();
        for e in &layer.entries {
            if e.kind == Kind::File && removed.contains_key(&e.path) {
                seen_removed.insert(&e.path);
            }
            if e.kind != Kind::HardLink || removed.contains_key(&e.path) {
                continue;
            }
            let Some(t) = &e.link else { continue };
            if !seen_removed.contains(t.as_str()) {
                continue;
            }
            let lp = &mut layers[li];
            if let Some(first) = promoted.get(t) {
                lp.changes.entry(e.path.clone()).or_default().relink_to = Some(first.clone());
            } else {
                promoted.insert(t.clone(), e.path.clone());
                lp.changes.entry(t.clone()).or_default().promote_to = Some(e.path.clone());
                // The link's own entry is replaced by the promoted one.
                let c = lp.changes.entry(e.path.clone()).or_default();
                c.remove = true;
            }
        }
    }

    Plan { layers, removed, setuid_stripped, caps_stripped, world_writable_fixed, notes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tests::{entry, layer};
    use crate::profile::load;

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
        let fs = FinalFs::build(vec![
            layer(vec![
                entry("bin", Kind::Symlink, Some("usr/bin")),
                entry("usr/bin/dash", Kind::File, None),
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
}
