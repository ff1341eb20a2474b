//! The checks themselves, one function each; see [`super::CHECKS`] for the table.
//!
//! Owns: what each check looks at and the evidence it gives. Must not: change anything, print, or
//! read beyond the final filesystem, the layers' entries and the config it is given.

use super::{AuditContext, CheckId, Evidence, Finding, Signature};
use crate::fs::{FinalFs, Loc};
use crate::layer::path::split_parent;
use crate::layer::tar::Kind;
use crate::plan::Matcher;
use crate::profile::{self, Rule};
use crate::secrets::{self, env_name as secret_env_name};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn run(fs: &FinalFs, config: &Value, ctx: &AuditContext) -> Vec<Finding> {
    let aliases = fs.dir_aliases();
    let no_rules: Vec<Rule> = Vec::new();
    let mut keep = Matcher::new(ctx.profile.map(|p| p.keep.as_slice()).unwrap_or(&no_rules), aliases);
    let mut allow = Matcher::new(ctx.profile.map(|p| p.setuid_allow.as_slice()).unwrap_or(&no_rules), aliases);
    let a = Audit { fs, ctx };
    let passwd = a.text("etc/passwd");
    let mut out = vec![
        Finding::new(CheckId::UserRoot, a.root_user(config, passwd.as_ref())),
        Finding::new(CheckId::HealthcheckMissing, healthcheck(config)),
        Finding::new(CheckId::FileSetuid, a.setuid(&mut keep, &mut allow)),
        Finding::new(
            CheckId::FileCapabilities,
            a.mode_check(
                &mut keep,
                |e| matches!(e.kind, Kind::File | Kind::HardLink) && e.caps,
                |_| "security.capability xattr".into(),
            ),
        ),
        Finding::new(
            CheckId::FileWorldWritable,
            a.mode_check(
                &mut keep,
                |e| {
                    matches!(e.kind, Kind::File | Kind::Dir)
                        && e.mode & 0o002 != 0
                        && !(e.kind == Kind::Dir && e.mode & 0o1000 != 0)
                },
                |e| format!("mode {:04o}", e.mode & 0o7777),
            ),
        ),
        Finding::new(CheckId::Shells, a.present("shells", aliases, &mut keep, false)),
        Finding::new(CheckId::PackageManagers, a.present("package-managers", aliases, &mut keep, false)),
        Finding::new(CheckId::PackageCaches, a.present("package-caches", aliases, &mut keep, true)),
    ];
    let secret_rules = profile::group("secrets");
    let mut secret_m = Matcher::new(&secret_rules, aliases);
    out.push(Finding::new(CheckId::SecretFile, a.present_with(&mut secret_m, &mut keep, true)));
    let (content, paths) = a.secret_content(&mut secret_m, &mut keep);
    let mut f = Finding::new(CheckId::SecretContent, content);
    if !paths.is_empty() {
        let list: Vec<String> = paths.iter().map(|p| format!("\"{p}\"")).collect();
        f.fix = format!("[files] remove = [{}]", list.join(", "));
    }
    out.push(f);
    out.push(Finding::new(CheckId::SecretEnv, env_secrets(config)));
    out.push(Finding::new(CheckId::SecretHistory, history_secrets(config)));
    out.push(Finding::new(CheckId::ShadowEmptyPassword, a.empty_passwords()));
    out.push(Finding::new(CheckId::AccountDuplicateId, a.duplicate_ids(passwd.as_ref())));
    let (latest, unpinned) = reference(ctx);
    out.push(Finding::new(CheckId::ReferenceLatest, latest));
    out.push(Finding::new(CheckId::ReferenceUnpinned, unpinned));
    out.push(Finding::new(CheckId::SignatureMissing, signature(&ctx.signature)));
    out.push(Finding::new(CheckId::VolumeSensitive, volumes(config)));
    out.push(Finding::new(CheckId::PortPrivileged, ports(config)));
    out.push(Finding::new(CheckId::LayerPathEscape, a.escapes()));
    out.push(Finding::new(CheckId::ContractUnmet, a.contract(config)));
    out.push(Finding::new(CheckId::PackageDatabaseStale, a.stale_packages()));
    out
}

struct Audit<'a> {
    fs: &'a FinalFs,
    ctx: &'a AuditContext<'a>,
}

/// A text file the scan kept whole (account files), with where it lives.
struct Text {
    body: String,
    ev: Evidence,
}

fn parent(p: &str) -> &str {
    split_parent(p).0
}

impl Audit<'_> {
    /// Where the runtime contract (crate::contract) has to give way.
    fn contract(&self, config: &Value) -> Vec<Evidence> {
        use crate::contract::Obstacle;
        let no_rules = profile::RuntimeRules::default();
        let rules = self.ctx.profile.map(|p| &p.runtime).unwrap_or(&no_rules);
        let (_, obstacles) = crate::contract::derive(self.fs, config, rules);
        obstacles
            .into_iter()
            .map(|o| match o {
                Obstacle::RootUser(u) => Evidence::field(
                    "config.User",
                    format!(
                        "{}: runAsNonRoot cannot be true",
                        if u.is_empty() { "not set (root)".into() } else { format!("\"{u}\" is root") }
                    ),
                ),
                Obstacle::UnknownUser(u) => Evidence::field(
                    "config.User",
                    format!("`{u}` is not in /etc/passwd or /etc/group: no numeric runAsUser"),
                ),
                Obstacle::Escalation(p) => {
                    let canon = p.trim_start_matches('/');
                    let ev = match self.fs.get(canon) {
                        Some((loc, _)) => self.file(canon, loc),
                        None => Evidence { path: Some(p.clone()), ..Default::default() },
                    };
                    ev.with_detail("setuid/setgid or file capabilities: allowPrivilegeEscalation must stay true")
                }
            })
            .collect()
    }

    fn file(&self, path: &str, loc: Loc) -> Evidence {
        Evidence {
            path: Some(format!("/{path}")),
            layer: self.ctx.layers.get(loc.layer).cloned().flatten(),
            layer_index: Some(loc.layer),
            ..Default::default()
        }
    }

    fn text(&self, path: &str) -> Option<Text> {
        let canon = self.fs.resolve(path, true)?;
        let (loc, e) = self.fs.get(&canon)?;
        let body = String::from_utf8_lossy(e.prefix()?).into_owned();
        Some(Text { body, ev: self.file(&canon, loc) })
    }

    fn root_user(&self, config: &Value, passwd: Option<&Text>) -> Vec<Evidence> {
        let raw = config["config"]["User"].as_str().unwrap_or("");
        let user = raw.trim();
        let name = user.split(':').next().unwrap_or("");
        let field = |d: String| vec![Evidence::field("config.User", d)];
        match name {
            "" => field("not set: containers run as root (uid 0)".into()),
            "root" => field(format!("\"{raw}\"")),
            n if n.bytes().all(|b| b.is_ascii_digit()) => match n.parse::<u64>() {
                Ok(0) => field(format!("\"{raw}\": uid 0")),
                _ => Vec::new(),
            },
            n => {
                let uid0 = passwd.is_some_and(|p| {
                    p.body.lines().any(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        f.len() >= 3 && f[0] == n && f[2].trim() == "0"
                    })
                });
                if uid0 {
                    let mut v = field(format!("\"{raw}\": `{n}` has uid 0 in /etc/passwd"));
                    v.extend(passwd.map(|p| p.ev.clone().with_detail(format!("{n} has uid 0"))));
                    v
                } else {
                    Vec::new()
                }
            }
        }
    }

    fn setuid(&self, keep: &mut Matcher, allow: &mut Matcher) -> Vec<Evidence> {
        let mut out = Vec::new();
        for (path, loc, e) in self.fs.iter() {
            if !matches!(e.kind, Kind::File | Kind::HardLink) || e.mode & 0o6000 == 0 {
                continue;
            }
            if allow.matches(path).is_some() || keep.matches(path).is_some() {
                continue;
            }
            let bits = match (e.mode & 0o4000 != 0, e.mode & 0o2000 != 0) {
                (true, true) => "setuid+setgid",
                (true, false) => "setuid",
                _ => "setgid",
            };
            out.push(self.file(path, loc).with_detail(format!(
                "{bits}, mode {:04o}, owner {}:{}",
                e.mode & 0o7777,
                e.uid,
                e.gid
            )));
        }
        out
    }

    fn mode_check(
        &self,
        keep: &mut Matcher,
        hit: impl Fn(crate::scan::Entry<'_>) -> bool,
        detail: impl Fn(crate::scan::Entry<'_>) -> String,
    ) -> Vec<Evidence> {
        let mut out = Vec::new();
        for (path, loc, e) in self.fs.iter() {
            if hit(e) && keep.matches(path).is_none() {
                out.push(self.file(path, loc).with_detail(detail(e)));
            }
        }
        out
    }

    fn present(
        &self,
        group: &str,
        aliases: &[(String, String)],
        keep: &mut Matcher,
        content_only: bool,
    ) -> Vec<Evidence> {
        let rules = profile::group(group);
        let mut m = Matcher::new(&rules, aliases);
        self.present_with(&mut m, keep, content_only)
    }

    /// Paths a group matches, each listed once at its topmost matching path (a cache directory,
    /// not each file in it), with the file count and bytes under it. With `content_only`, only
    /// non-empty files count (an empty lock file is no cache). Rules that float (`/**/name`)
    /// do not match in library code; anchored ones (`/usr/lib/ssl/private/*`) do.
    fn present_with(&self, m: &mut Matcher, keep: &mut Matcher, content_only: bool) -> Vec<Evidence> {
        let mut hits: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (path, _, e) in self.fs.iter() {
            let has_content = (e.kind == Kind::File && e.size > 0) || e.kind == Kind::HardLink;
            if e.kind == Kind::Dir || (content_only && !has_content) {
                continue;
            }
            let Some(rule) = m.matches(path) else {
                continue;
            };
            if keep.matches(path).is_some() || (rule.pattern.starts_with("/**/") && secrets::library_path(path)) {
                continue;
            }
            let mut top = path;
            while !parent(top).is_empty() && m.matches(parent(top)).is_some() {
                top = parent(top);
            }
            let h = hits.entry(top.to_string()).or_default();
            h.0 += 1;
            h.1 += e.size;
        }
        let mut out = Vec::new();
        for (top, (files, bytes)) in hits {
            let Some((loc, e)) = self.fs.get(&top) else {
                continue;
            };
            let mut ev = self.file(&top, loc);
            if e.kind == Kind::Dir {
                ev.detail = Some(format!("{files} file{} ({bytes} bytes)", if files == 1 { "" } else { "s" }));
            } else if e.kind == Kind::Symlink {
                ev.detail = Some(format!("symlink to {}", e.link().unwrap_or("?")));
            }
            out.push(ev);
        }
        out
    }

    /// Private keys and AWS key ids in the kept prefixes of files that no secret name already
    /// covers. Returns the evidence and the paths (for the fix).
    fn secret_content(&self, by_name: &mut Matcher, keep: &mut Matcher) -> (Vec<Evidence>, Vec<String>) {
        let mut out = Vec::new();
        let mut paths = Vec::new();
        for (path, loc, e) in self.fs.iter() {
            let Some(prefix) = e.prefix() else {
                continue;
            };
            if e.kind != Kind::File || prefix.starts_with(b"\x7fELF") || secrets::library_path(path) {
                continue;
            }
            if by_name.matches(path).is_some() || keep.matches(path).is_some() {
                continue;
            }
            let found = secrets::find(prefix);
            if !found.is_empty() {
                out.push(self.file(path, loc).with_detail(found.join("; ")));
                paths.push(format!("/{path}"));
            }
        }
        (out, paths)
    }

    fn empty_passwords(&self) -> Vec<Evidence> {
        let Some(shadow) = self.text("etc/shadow") else {
            return Vec::new();
        };
        shadow
            .body
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 2 && !f[0].is_empty() && f[1].is_empty())
                    .then(|| shadow.ev.clone().with_detail(format!("account `{}` has an empty password", f[0])))
            })
            .collect()
    }

    fn duplicate_ids(&self, passwd: Option<&Text>) -> Vec<Evidence> {
        let group = self.text("etc/group");
        let mut out = Vec::new();
        for (t, what) in [(passwd, "uid"), (group.as_ref(), "gid")] {
            let Some(t) = t else { continue };
            let mut by_id: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
            for l in t.body.lines() {
                let f: Vec<&str> = l.split(':').collect();
                if let Some(Ok(id)) = f.get(2).map(|s| s.trim().parse::<u64>()) {
                    by_id.entry(id).or_default().push(f[0]);
                }
            }
            for (id, names) in by_id {
                if names.len() > 1 {
                    out.push(t.ev.clone().with_detail(format!("{what} {id}: {}", names.join(", "))));
                }
            }
        }
        out
    }

    /// Every layer's entries as stored: the scan puts escaping names back inside the root, so
    /// the merged view cannot tell; the per-layer flag can.
    /// Packages the databases list whose files are all gone, and listed files that are missing
    /// (one line per package, naming the database).
    fn stale_packages(&self) -> Vec<Evidence> {
        let fs = self.fs;
        let dbs = match crate::pkgdb::load(fs) {
            Ok(d) => d,
            Err(e) => {
                return vec![Evidence {
                    detail: Some(format!("cannot read the package database: {e}")),
                    ..Default::default()
                }]
            }
        };
        let mut out = Vec::new();
        for db in &dbs {
            let file = db.path();
            if let Some(why) = &db.unreadable {
                out.push(Evidence {
                    path: Some(file),
                    detail: Some(format!("cannot read the rpm database: {why}")),
                    ..Default::default()
                });
                continue;
            }
            for p in &db.packages {
                let (mut files, mut missing) = (0usize, Vec::new());
                for x in &p.paths {
                    let Some(c) = fs.resolve(x, false).filter(|c| !c.is_empty()) else { continue };
                    if fs.is_dir(&c) {
                        continue;
                    }
                    files += 1;
                    if fs.get(&c).is_none() {
                        missing.push(x.as_str());
                    }
                }
                let detail = if files > 0 && missing.len() == files {
                    format!("package {} is listed, but none of its {files} files is in the image", p.name)
                } else if let Some(first) = missing.first() {
                    format!("package {} lists {} files the image does not have (e.g. {first})", p.name, missing.len())
                } else {
                    continue;
                };
                out.push(Evidence { path: Some(file.clone()), detail: Some(detail), ..Default::default() });
            }
        }
        out
    }

    fn escapes(&self) -> Vec<Evidence> {
        let mut out = Vec::new();
        for (li, layer) in self.fs.layers.iter().enumerate() {
            for (ei, e) in layer.entries.iter().enumerate() {
                if e.escapes {
                    out.push(self.file(e.path, Loc { layer: li, entry: ei }).with_detail(
                        "the stored name leaves the root (../ or absolute); shown as harden normalises it",
                    ));
                }
            }
        }
        for (loc, link) in &self.fs.through_symlink {
            let e = self.fs.entry(*loc);
            out.push(self.file(e.path, *loc).with_detail(format!(
                "written through /{link}, a symlink out of the root ({}): an unpacker that follows it writes outside",
                self.fs.get(link).and_then(|(_, l)| l.link().map(str::to_string)).unwrap_or_default()
            )));
        }
        out
    }
}

fn healthcheck(config: &Value) -> Vec<Evidence> {
    let test = &config["config"]["Healthcheck"]["Test"];
    match test.as_array() {
        Some(t) if t.first().and_then(Value::as_str) == Some("NONE") => {
            vec![Evidence::field("config.Healthcheck", "disabled (NONE)")]
        }
        Some(t) if !t.is_empty() => Vec::new(),
        _ => vec![Evidence::field("config.Healthcheck", "not set")],
    }
}

/// A value that is not itself a secret: empty, a path, a variable reference, or scrubbed.
fn harmless_value(v: &str) -> bool {
    let v = v.trim_matches(|c| c == '"' || c == '\'');
    v.is_empty() || v.starts_with('/') || v.starts_with('$') || v.contains("***")
}

fn env_secrets(config: &Value) -> Vec<Evidence> {
    let mut out = Vec::new();
    for v in config["config"]["Env"].as_array().into_iter().flatten() {
        let s = v.as_str().unwrap_or_default();
        let (k, val) = s.split_once('=').unwrap_or((s, ""));
        if secret_env_name(k) && !harmless_value(val) {
            out.push(Evidence::field("config.Env", format!("{k} looks like a secret")));
        } else {
            for what in secrets::find(val.as_bytes()) {
                out.push(Evidence::field("config.Env", format!("{k} holds a {what}")));
            }
        }
    }
    out
}

fn identifier(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `NAME=value` pairs with a secret-looking name in `created_by` (ENV, ARG, RUN with build
/// args), and key material anywhere in it.
fn history_secrets(config: &Value) -> Vec<Evidence> {
    let mut out = Vec::new();
    for (i, h) in config["history"].as_array().into_iter().flatten().enumerate() {
        let Some(cb) = h["created_by"].as_str() else {
            continue;
        };
        let field = format!("history[{i}].created_by");
        let mut names = BTreeSet::new();
        for tok in cb.split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|') {
            let Some((k, v)) = tok.split_once('=') else {
                continue;
            };
            if identifier(k) && secret_env_name(k) && !harmless_value(v) {
                names.insert(k.to_string());
            }
        }
        for n in names {
            out.push(Evidence::field(field.clone(), format!("{n}=… looks like a secret")));
        }
        for what in secrets::find(cb.as_bytes()) {
            out.push(Evidence::field(field.clone(), what));
        }
    }
    out
}

fn reference(ctx: &AuditContext) -> (Vec<Evidence>, Vec<Evidence>) {
    let Some(r) = ctx.reference else {
        return (Vec::new(), Vec::new());
    };
    if r.digest().is_some() {
        return (Vec::new(), Vec::new());
    }
    let latest = r.names_latest();
    let ev = vec![Evidence::field("reference", r.to_string())];
    if latest {
        (ev, Vec::new())
    } else {
        (Vec::new(), ev)
    }
}

fn signature(s: &Signature) -> Vec<Evidence> {
    match s {
        Signature::NotChecked | Signature::Found(_) => Vec::new(),
        Signature::Absent(at) => vec![Evidence::field("signature", format!("no cosign signature at {at}"))],
        Signature::Unknown(note) => {
            vec![Evidence::field("signature", format!("could not look for a cosign signature: {note}"))]
        }
    }
}

fn volumes(config: &Value) -> Vec<Evidence> {
    let mut out = Vec::new();
    for k in config["config"]["Volumes"].as_object().into_iter().flat_map(|m| m.keys()) {
        let norm = format!("/{}", k.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/"));
        if ["/proc", "/sys", "/dev"].iter().any(|s| norm == *s || norm.starts_with(&format!("{s}/"))) {
            out.push(Evidence::field("config.Volumes", k.clone()));
        }
    }
    out
}

fn ports(config: &Value) -> Vec<Evidence> {
    let mut out = Vec::new();
    for k in config["config"]["ExposedPorts"].as_object().into_iter().flat_map(|m| m.keys()) {
        let port = k.split('/').next().unwrap_or("").split('-').next().unwrap_or("");
        if let Ok(p) = port.trim().parse::<u32>() {
            if (1..1024).contains(&p) {
                out.push(Evidence::field("config.ExposedPorts", k.clone()));
            }
        }
    }
    out
}
