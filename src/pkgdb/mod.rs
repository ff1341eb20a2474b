//! Package databases: what an image's dpkg (`var/lib/dpkg/status` + `info/`, or distroless's
//! `status.d/`) or apk (`lib/apk/db/installed`, `etc/apk/world`) database says is installed
//! and which paths each package owns, read from the contents the scan keeps of them
//! ([`crate::scan::prefix_len`]), and the edits that make the database tell the truth once
//! paths are removed. rpm databases (sqlite, Berkeley DB: [`rpm`]) are read the same way but
//! never edited: [`Database::edit`] leaves them as they are, and the plan names the packages
//! that lost files instead. An rpm database harden cannot read is a [`Database`] with no
//! packages and an [`Database::unreadable`] reason, never a failure.
//!
//! The edited files are written in place — in the layer whose copy of the file is the one the
//! container sees — rather than in a new layer on top: the database then never exists twice in
//! the result (a scanner reading layers one by one sees no stale copy), no layer is added to
//! images that had none, and the rewrite already re-encodes changed entries deterministically
//! (the new bytes are a pure function of the old ones and the plan, so the digest is too).
//!
//! Owns: reading the databases out of a [`FinalFs`] and computing their edits. Must not: decide
//! what to remove (the plan does), write layers.

pub mod apk;
pub mod dpkg;
pub mod paths;
pub mod rpm;
pub mod sbom;

use crate::fs::FinalFs;
use crate::layer::tar::Kind;
use std::collections::{BTreeMap, BTreeSet};

use paths::*;
pub use paths::{is_database_file, MAX_FILE};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `var/lib/dpkg/status` and `info/`.
    Dpkg,
    /// `var/lib/dpkg/status.d/<pkg>` and `<pkg>.md5sums` (distroless).
    DpkgStatusD,
    Apk,
    /// `rpmdb.sqlite` or Berkeley DB `Packages`: read, never edited.
    Rpm,
}

impl Format {
    /// The purl type.
    pub fn purl_type(self) -> &'static str {
        match self {
            Format::Dpkg | Format::DpkgStatusD => "deb",
            Format::Apk => "apk",
            Format::Rpm => "rpm",
        }
    }
}

/// One installed package.
#[derive(Clone, Debug)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Every path the database says it owns, absolute, as the database writes it.
    pub paths: Vec<String>,
    /// Names it depends on (`Depends`/`Pre-Depends`, apk `D:`).
    pub depends: Vec<String>,
}

/// One database, read.
#[derive(Debug)]
pub struct Database {
    pub format: Format,
    pub packages: Vec<Package>,
    /// Why the database could not be read (then `packages` is empty); only rpm databases are
    /// read this leniently, since harden only reports on them.
    pub unreadable: Option<String>,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Dpkg {
        status: Vec<dpkg::Stanza>,
        /// Per package: its stanza's index in `status`.
        stanza: Vec<usize>,
        /// Per package: its `info/` files (canonical paths).
        info: Vec<Vec<String>>,
        /// Contents of the `.list`, `.md5sums`, `.conffiles` files read.
        texts: BTreeMap<String, String>,
    },
    StatusD {
        /// Stanza files: canonical path and stanzas.
        files: Vec<(String, Vec<dpkg::Stanza>)>,
        /// Per package: (file, stanza) and its md5sums file (path, text).
        at: Vec<(usize, usize, Option<Md5sums>)>,
    },
    Apk {
        path: String,
        pkgs: Vec<apk::Pkg>,
        world: Option<String>,
    },
    Rpm {
        path: String,
    },
}

/// A `.md5sums` file: its canonical path and contents.
type Md5sums = (String, String);

/// What the database edit does: files with new contents, files to drop (canonical paths).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Edits {
    pub replace: BTreeMap<String, Vec<u8>>,
    pub remove: BTreeSet<String>,
}

/// The contents of a database file the scan kept whole; None when the image lacks it.
fn text<'a>(fs: &'a FinalFs, path: &str) -> Result<Option<&'a str>, String> {
    let Some((_, e)) = fs.get(path) else { return Ok(None) };
    if e.kind != Kind::File {
        return Err(format!("/{path}: a package database file that is not a regular file ({:?})", e.kind));
    }
    let data = e.prefix().unwrap_or(&[]);
    if (data.len() as u64) < e.size {
        return Err(format!(
            "/{path}: {} bytes, more than the {} MiB harden reads of a package database file",
            e.size,
            MAX_FILE >> 20
        ));
    }
    std::str::from_utf8(data).map(Some).map_err(|x| format!("/{path}: not UTF-8 text (at byte {})", x.valid_up_to()))
}

/// Most paths one database may list, all packages together: as many as a run's entries
/// (`--max-entries`' default); a database listing more is not one harden reads.
pub const MAX_PATHS: usize = crate::layer::DEFAULT_MAX_ENTRIES as usize;

/// Counts the paths a database lists, refusing past [`MAX_PATHS`].
fn count_paths(total: &mut usize, more: usize, file: &str) -> Result<(), String> {
    *total = total.saturating_add(more);
    if *total > MAX_PATHS {
        return Err(format!("/{file}: the package database lists more than {MAX_PATHS} paths"));
    }
    Ok(())
}

/// A second installed stanza for a package already read (same name and architecture): dpkg
/// never writes one, and reading its files again would cost them twice.
fn duplicate(seen: &mut BTreeSet<(String, String)>, file: &str, s: &dpkg::Stanza) -> Result<(), String> {
    let key = (s.package().to_string(), s.get("Architecture").unwrap_or("").to_string());
    if !seen.insert(key) {
        return Err(format!("{file}:{}: a second stanza for package {}, which dpkg never writes", s.line, s.package()));
    }
    Ok(())
}

/// A database path must be absolute and stay inside the root.
fn check_path(file: &str, line: usize, p: &str) -> Result<(), String> {
    if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
        return Err(format!(
            "/{file}:{line}: path {:?} is not absolute or leaves the root",
            p.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

/// Why the package databases cannot be read: the file (and line) at fault and what is wrong
/// there, as one line. The readers below give their reasons as text; this is what leaves the
/// module.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// Every package database in the image (dpkg, distroless status.d, apk, rpm), or the first
/// error of a database harden edits, naming the file (and line) at fault. An rpm database that
/// cannot be read comes back with its reason in [`Database::unreadable`].
pub fn load(fs: &FinalFs) -> Result<Vec<Database>, Unreadable> {
    load_all(fs).map_err(Unreadable)
}

fn load_all(fs: &FinalFs) -> Result<Vec<Database>, String> {
    let mut out = Vec::new();
    if let Some(db) = load_dpkg(fs)? {
        out.push(db);
    }
    if let Some(db) = load_status_d(fs)? {
        out.push(db);
    }
    for path in APK_INSTALLED {
        if let Some(db) = load_apk(fs, path)? {
            out.push(db);
        }
    }
    out.extend(load_rpm(fs));
    Ok(out)
}

/// The rpm database the image holds (canonical path; the first of [`RPM_DBS`] present,
/// through symlinked directories such as Fedora's `var/lib/rpm` → `usr/lib/sysimage/rpm`).
pub fn rpm_database(fs: &FinalFs) -> Option<String> {
    RPM_DBS.into_iter().find_map(|p| fs.resolve(p, true).filter(|c| fs.get(c).is_some()))
}

fn load_rpm(fs: &FinalFs) -> Option<Database> {
    let path = rpm_database(fs)?;
    let read = || -> Result<Vec<Package>, String> {
        let (_, e) = fs.get(&path).ok_or_else(|| format!("/{path}: gone"))?;
        if e.kind != Kind::File {
            return Err(format!("/{path}: not a regular file ({:?})", e.kind));
        }
        let data = e.prefix().unwrap_or(&[]);
        if (data.len() as u64) < e.size {
            return Err(format!("/{path}: {} bytes, more than the {} MiB harden reads", e.size, MAX_FILE >> 20));
        }
        rpm::read(&path, data)
    };
    let (packages, unreadable) = match read() {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    Some(Database { format: Format::Rpm, packages, unreadable, inner: Inner::Rpm { path } })
}

fn under<'a>(fs: &'a FinalFs, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    fs.iter().filter_map(move |(p, _, e)| {
        let name = p.strip_prefix(dir)?;
        (!name.contains('/') && e.kind != Kind::Dir).then_some((p, name))
    })
}

fn load_dpkg(fs: &FinalFs) -> Result<Option<Database>, String> {
    let Some(status_text) = text(fs, DPKG_STATUS)? else { return Ok(None) };
    let status = dpkg::parse(&format!("/{DPKG_STATUS}"), status_text)?;
    // info/ files by stem: `sudo.list` → `sudo`; `libc6:amd64.md5sums` → `libc6:amd64`.
    let mut by_stem: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (p, name) in under(fs, DPKG_INFO) {
        if let Some((stem, ext)) = name.rsplit_once('.') {
            if !ext.is_empty() {
                by_stem.entry(stem).or_default().push(p.to_string());
            }
        }
    }
    let (mut packages, mut stanza, mut info, mut texts) = (Vec::new(), Vec::new(), Vec::new(), BTreeMap::new());
    let (mut seen, mut total) = (BTreeSet::new(), 0usize);
    for (i, s) in status.iter().enumerate() {
        if !s.installed() {
            continue;
        }
        duplicate(&mut seen, &format!("/{DPKG_STATUS}"), s)?;
        let (name, arch) = (s.package().to_string(), s.get("Architecture").unwrap_or("").to_string());
        let mut files: Vec<String> = Vec::new();
        for stem in [name.clone(), format!("{name}:{arch}")] {
            files.extend(by_stem.get(stem.as_str()).into_iter().flatten().cloned());
        }
        files.sort();
        let mut paths = Vec::new();
        for f in &files {
            // Each file once: `name` and `name:arch` may both match it.
            if (f.ends_with(".list") || f.ends_with(".md5sums") || f.ends_with(".conffiles")) && !texts.contains_key(f)
            {
                let t = text(fs, f)?.unwrap_or("");
                if f.ends_with(".list") {
                    let before = paths.len();
                    for (n, p) in dpkg::list_paths(t).enumerate() {
                        check_path(f, n + 1, p)?;
                        paths.push(p.to_string());
                    }
                    count_paths(&mut total, paths.len() - before, f)?;
                }
                texts.insert(f.clone(), t.to_string());
            }
        }
        packages.push(Package {
            version: s.get("Version").unwrap_or("").to_string(),
            depends: s.depends(),
            paths,
            name,
            arch,
        });
        stanza.push(i);
        info.push(files);
    }
    Ok(Some(Database {
        format: Format::Dpkg,
        packages,
        unreadable: None,
        inner: Inner::Dpkg { status, stanza, info, texts },
    }))
}

fn load_status_d(fs: &FinalFs) -> Result<Option<Database>, String> {
    let entries: Vec<(&str, &str)> = under(fs, DPKG_STATUS_D).collect();
    if entries.is_empty() {
        return Ok(None);
    }
    let (mut files, mut at, mut packages) = (Vec::new(), Vec::new(), Vec::new());
    let (mut seen, mut md5_used, mut total) = (BTreeSet::new(), BTreeSet::new(), 0usize);
    for (p, name) in &entries {
        if name.ends_with(".md5sums") {
            continue;
        }
        let t = text(fs, p)?.unwrap_or("");
        let stanzas = dpkg::parse(&format!("/{p}"), t)?;
        let fi = files.len();
        for (si, s) in stanzas.iter().enumerate() {
            if !s.installed() {
                continue;
            }
            duplicate(&mut seen, &format!("/{p}"), s)?;
            let pkg = s.package();
            // `status.d/<file>.md5sums`, else `status.d/<package>.md5sums`; each read once, for
            // the first stanza it belongs to (a file of several stanzas has one md5sums).
            let md5 = [format!("{p}.md5sums"), format!("{DPKG_STATUS_D}{pkg}.md5sums")]
                .into_iter()
                .find(|m| fs.get(m).is_some())
                .filter(|m| md5_used.insert(m.clone()));
            let md5 = match md5 {
                Some(m) => Some((m.clone(), text(fs, &m)?.unwrap_or("").to_string())),
                None => None,
            };
            let mut paths = Vec::new();
            if let Some((m, t)) = &md5 {
                for (n, l) in t.lines().enumerate() {
                    if let Some(path) = dpkg::md5sums_path(l) {
                        check_path(m, n + 1, &path)?;
                        paths.push(path);
                    }
                }
                count_paths(&mut total, paths.len(), m)?;
            }
            packages.push(Package {
                name: pkg.to_string(),
                version: s.get("Version").unwrap_or("").to_string(),
                arch: s.get("Architecture").unwrap_or("").to_string(),
                depends: s.depends(),
                paths,
            });
            at.push((fi, si, md5));
        }
        files.push((p.to_string(), stanzas));
    }
    Ok(Some(Database { format: Format::DpkgStatusD, packages, unreadable: None, inner: Inner::StatusD { files, at } }))
}

fn load_apk(fs: &FinalFs, path: &str) -> Result<Option<Database>, String> {
    let Some(t) = text(fs, path)? else { return Ok(None) };
    let pkgs = apk::parse(&format!("/{path}"), t)?;
    let world = text(fs, APK_WORLD)?.map(str::to_string);
    let packages = pkgs
        .iter()
        .map(|p| {
            let mut paths = Vec::new();
            for (d, files) in p.owned() {
                paths.push(d);
                paths.extend(files);
            }
            Package {
                name: p.name().to_string(),
                version: p.version().to_string(),
                arch: p.arch().to_string(),
                depends: p.depends(),
                paths,
            }
        })
        .collect();
    Ok(Some(Database {
        format: Format::Apk,
        packages,
        unreadable: None,
        inner: Inner::Apk { path: path.to_string(), pkgs, world },
    }))
}

impl Database {
    /// The file that stands for the database in messages (absolute).
    pub fn path(&self) -> String {
        match &self.inner {
            Inner::Dpkg { .. } => format!("/{DPKG_STATUS}"),
            Inner::StatusD { .. } => format!("/{}", DPKG_STATUS_D.trim_end_matches('/')),
            Inner::Apk { path, .. } | Inner::Rpm { path } => format!("/{path}"),
        }
    }

    /// Whether [`Database::edit`] can make it follow removed files (rpm: no).
    pub fn editable(&self) -> bool {
        self.format != Format::Rpm
    }

    /// The edits that drop the packages `removed` (indexes into `packages`) and, from every
    /// other package, the paths `gone` says are gone (absolute, as the database writes them).
    pub fn edit(&self, removed: &BTreeSet<usize>, gone: &dyn Fn(&str) -> bool) -> Edits {
        let mut ed = Edits::default();
        match &self.inner {
            Inner::Dpkg { status, stanza, info, texts } => {
                let mut new_status = status.clone();
                let mut drop_stanzas = BTreeSet::new();
                let mut changed = false;
                for (i, files) in info.iter().enumerate() {
                    if removed.contains(&i) {
                        drop_stanzas.insert(stanza[i]);
                        ed.remove.extend(files.iter().cloned());
                        continue;
                    }
                    changed |= new_status[stanza[i]].drop_conffiles(gone);
                    for f in files {
                        let Some(t) = texts.get(f) else { continue };
                        let new = if f.ends_with(".md5sums") {
                            dpkg::filter_md5sums(t, gone)
                        } else {
                            dpkg::filter_list(t, gone)
                        };
                        if new != *t {
                            ed.replace.insert(f.clone(), new.into_bytes());
                        }
                    }
                }
                if changed || !drop_stanzas.is_empty() {
                    let kept: Vec<dpkg::Stanza> = new_status
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !drop_stanzas.contains(i))
                        .map(|(_, s)| s)
                        .collect();
                    ed.replace.insert(DPKG_STATUS.to_string(), dpkg::write(&kept).into_bytes());
                }
            }
            Inner::StatusD { files, at } => {
                let mut drop: BTreeSet<(usize, usize)> = BTreeSet::new();
                for (i, (fi, si, md5)) in at.iter().enumerate() {
                    if removed.contains(&i) {
                        drop.insert((*fi, *si));
                        if let Some((m, _)) = md5 {
                            ed.remove.insert(m.clone());
                        }
                    } else if let Some((m, t)) = md5 {
                        let new = dpkg::filter_md5sums(t, gone);
                        if new != *t {
                            ed.replace.insert(m.clone(), new.into_bytes());
                        }
                    }
                }
                for (fi, (path, stanzas)) in files.iter().enumerate() {
                    let kept: Vec<dpkg::Stanza> = stanzas
                        .iter()
                        .enumerate()
                        .filter(|(si, _)| !drop.contains(&(fi, *si)))
                        .map(|(_, s)| s.clone())
                        .collect();
                    if kept.is_empty() && !stanzas.is_empty() {
                        ed.remove.insert(path.clone());
                    } else if kept.len() != stanzas.len() {
                        ed.replace.insert(path.clone(), dpkg::write(&kept).into_bytes());
                    }
                }
            }
            Inner::Apk { path, pkgs, world } => {
                let mut changed = false;
                let mut kept = Vec::new();
                for (i, p) in pkgs.iter().enumerate() {
                    if removed.contains(&i) {
                        changed = true;
                        continue;
                    }
                    let mut p = p.clone();
                    changed |= p.trim(gone);
                    kept.push(p);
                }
                if changed {
                    ed.replace.insert(path.clone(), apk::write(&kept).into_bytes());
                }
                if let Some(w) = world {
                    let names: BTreeSet<&str> = removed.iter().map(|&i| self.packages[i].name.as_str()).collect();
                    let new = apk::filter_world(w, &|n| names.contains(n));
                    if new != *w {
                        ed.replace.insert(APK_WORLD.to_string(), new.into_bytes());
                    }
                }
            }
            // Never edited: see the module's doc.
            Inner::Rpm { .. } => {}
        }
        ed
    }
}

#[cfg(test)]
mod tests;
