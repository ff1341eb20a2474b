//! Guard: check a plan against the config before anything is rewritten — the entrypoint/CMD
//! executable (absolute or on PATH, through symlinks), a script's shebang interpreter, an ELF
//! program interpreter, the health check's command (`CMD-SHELL` needs /bin/sh), the user.
//! A finding names the file, the rule that removes it, and the `keep` that would fix it.
//!
//! Each ELF among them has its shared libraries followed too (`DT_NEEDED`, recursively),
//! resolved as glibc's loader does: `DT_RPATH` (when there is no `DT_RUNPATH`, with the
//! executable's), `LD_LIBRARY_PATH` from the config's Env, `DT_RUNPATH`, with `$ORIGIN`; then
//! `/etc/ld.so.conf` and its `include`s (and musl's `/etc/ld-musl-*.path`) as the plan leaves
//! them — standing in for `ld.so.cache`, which is built from them; then the default directories
//! for the ELF's class and machine (`/lib/<multiarch>`, `/usr/lib/<multiarch>`, `/lib64`,
//! `/usr/lib64`, `/lib`, `/usr/lib`, `/usr/local/lib`), through symlinks, skipping libraries of
//! another class or machine. A library the source image already lacked is a preexisting note.
//!
//! Owns: "will the result still start?". Must not: change the plan.

use crate::fs::FinalFs;
use crate::layer::elf::{multiarch, ElfDeps};
use crate::layer::path::split_parent;
use crate::layer::tar::Kind;
use crate::plan::Plan;
use crate::scan::Entry;
use serde::Serialize;
use serde_json::Value;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MAX_DEPTH: usize = 8;
/// Libraries followed at most in one check (a hostile image could chain thousands).
const MAX_LIBS: usize = 4096;
/// Candidate paths looked up at most while following libraries: with [`MAX_LIBS`], it bounds
/// the guard's time on a hostile image (hundreds of names, thousands of search directories).
const MAX_LIB_LOOKUPS: usize = 200_000;

#[derive(Clone, Debug, Serialize)]
pub struct Breakage {
    /// What needs the file: `ENTRYPOINT`, `HEALTHCHECK`, `interpreter of /app/run.sh`, …
    pub needed_by: String,
    /// The path as the config or file names it.
    pub path: String,
    /// The canonical paths in the image (the file and any symlink leading to it) that the plan
    /// removes; empty when the image lacked the file already.
    pub removed: Vec<String>,
    pub rule: Option<String>,
    pub origin: Option<String>,
}

impl std::fmt::Display for Breakage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.removed.first(), &self.rule) {
            (Some(r), Some(rule)) => {
                let keep: Vec<String> = self.removed.iter().map(|p| format!("\"/{p}\"")).collect();
                write!(
                    f,
                    "{} needs {} (/{r} in the image), which rule `{rule}` from {} removes; add keep = [{}] to a profile to keep it",
                    self.needed_by,
                    self.path,
                    self.origin.as_deref().unwrap_or("the profile"),
                    keep.join(", ")
                )
            }
            _ => write!(f, "{} needs {}, which the image does not have", self.needed_by, self.path),
        }
    }
}

pub struct Guard<'a> {
    fs: &'a FinalFs,
    plan: &'a Plan,
    path_dirs: Vec<String>,
    workdir: String,
    /// `LD_LIBRARY_PATH` of the config's Env.
    ld_library_path: Vec<String>,
    /// Directories of `/etc/ld.so.conf` (and includes) after the plan, read once.
    conf_dirs: Option<Vec<String>>,
    /// Libraries (canonical paths) already followed.
    libs_seen: std::collections::HashSet<String>,
    /// Candidate paths looked up so far (see [`MAX_LIB_LOOKUPS`]).
    lookups: std::cell::Cell<usize>,
    pub broken: Vec<Breakage>,
    /// Problems the source image already had (not caused by harden): reported, not refused.
    pub preexisting: Vec<Breakage>,
    /// What the guard did not check, and why.
    pub notes: Vec<String>,
}

impl<'a> Guard<'a> {
    /// Candidate paths looked up while following libraries (bounded by [`MAX_LIB_LOOKUPS`]).
    pub fn lookups(&self) -> usize {
        self.lookups.get()
    }

    pub fn check(fs: &'a FinalFs, plan: &'a Plan, config: &Value, user: Option<&str>) -> Guard<'a> {
        let c = &config["config"];
        let env_var = |name: &str| {
            let prefix = format!("{name}=");
            c["Env"].as_array().and_then(|env| {
                env.iter().filter_map(Value::as_str).find_map(|e| e.strip_prefix(prefix.as_str()).map(str::to_string))
            })
        };
        let path_var = env_var("PATH").unwrap_or_else(|| DEFAULT_PATH.to_string());
        let ld_library_path = env_var("LD_LIBRARY_PATH").unwrap_or_default();
        let mut g = Guard {
            fs,
            plan,
            path_dirs: path_var.split(':').filter(|d| !d.is_empty()).map(str::to_string).collect(),
            workdir: c["WorkingDir"].as_str().unwrap_or("/").to_string(),
            ld_library_path: ld_library_path.split(':').filter(|d| !d.is_empty()).map(str::to_string).collect(),
            conf_dirs: None,
            libs_seen: Default::default(),
            lookups: Default::default(),
            broken: Vec::new(),
            preexisting: Vec::new(),
            notes: Vec::new(),
        };
        let strings = |v: &Value| -> Vec<String> {
            v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
        };
        let mut argv = strings(&c["Entrypoint"]);
        let what = if argv.is_empty() { "CMD" } else { "ENTRYPOINT" };
        argv.extend(strings(&c["Cmd"]));
        if let Some(exe) = argv.first() {
            g.executable(what, exe, 0);
        }
        let hc = strings(&c["Healthcheck"]["Test"]);
        match hc.first().map(String::as_str) {
            Some("CMD") if hc.len() > 1 => g.executable("HEALTHCHECK", &hc[1], 0),
            Some("CMD-SHELL") => g.executable("HEALTHCHECK (CMD-SHELL)", "/bin/sh", 0),
            _ => {}
        }
        if let Some(u) = user {
            g.user(u);
        }
        g
    }

    /// Lookup in the filesystem as it will be after the plan.
    fn after(&self) -> impl Fn(&str) -> Option<Entry<'a>> + 'a {
        let (fs, plan) = (self.fs, self.plan);
        move |p: &str| if plan.is_removed(p) { None } else { fs.get(p).map(|(_, e)| e) }
    }

    /// Find `name` as the kernel would exec it; None when not found.
    fn locate(&self, name: &str) -> Option<String> {
        if name.contains('/') {
            let abs = if name.starts_with('/') { name.to_string() } else { format!("{}/{name}", self.workdir) };
            return Some(abs);
        }
        for d in &self.path_dirs {
            let candidate = format!("{d}/{name}");
            let canon = self.fs.resolve(&candidate, true)?;
            if matches!(self.fs.get(&canon), Some((_, e)) if e.kind != Kind::Dir) {
                return Some(candidate);
            }
        }
        None
    }

    fn blame(&mut self, needed_by: &str, path: &str) {
        self.blame_as(needed_by, path, path)
    }

    /// As [`blame`](Self::blame), showing the file as `shown` (a library's DT_NEEDED name).
    fn blame_as(&mut self, needed_by: &str, shown: &str, path: &str) {
        let before_link = self.fs.resolve(path, false);
        let before_target = self.fs.resolve(path, true);
        let mut removed: Vec<String> =
            [before_link, before_target].into_iter().flatten().filter(|p| self.plan.is_removed(p)).collect();
        removed.dedup();
        let rule = removed.first().and_then(|r| self.plan.removed.get(r));
        let b = Breakage {
            needed_by: needed_by.to_string(),
            path: shown.to_string(),
            rule: rule.map(|r| r.pattern.clone()),
            origin: rule.map(|r| r.origin.clone()),
            removed,
        };
        if !b.removed.is_empty() {
            self.broken.push(b);
        } else {
            self.preexisting.push(b);
        }
    }

    fn executable(&mut self, needed_by: &str, name: &str, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let located = match self.locate(name) {
            Some(l) => l,
            None => {
                // Not on PATH even before the plan: the image was like this already.
                self.preexisting.push(Breakage {
                    needed_by: needed_by.into(),
                    path: name.into(),
                    removed: Vec::new(),
                    rule: None,
                    origin: None,
                });
                return;
            }
        };
        let after = self.after();
        let canon_after = self.fs.resolve_with(&located, true, &after);
        let exists_after = canon_after.as_deref().and_then(&after).map(|e| e.kind != Kind::Dir).unwrap_or(false);
        drop(after);
        if !exists_after {
            self.blame(needed_by, &located);
            return;
        }
        let Some(canon) = canon_after else { return };
        if let Some(deps) = self.fs.get(&canon).and_then(|(_, e)| e.elf().cloned()) {
            self.libraries(needed_by, &canon, deps);
        }
        let Some(prefix) = self.fs.get(&canon).and_then(|(_, e)| e.prefix().map(<[u8]>::to_vec)) else { return };
        if let Some(interp) = shebang(&prefix) {
            let what = format!("the interpreter of {located}");
            let mut parts = interp.split_whitespace();
            let first = parts.next().unwrap_or_default().to_string();
            let arg = parts.next().map(str::to_string);
            self.executable(&what, &first, depth + 1);
            if first.ends_with("/env") {
                if let Some(prog) = arg.filter(|a| !a.starts_with('-')) {
                    self.executable(&what, &prog, depth + 1);
                }
            }
        } else if let Some(interp) = elf_interpreter(&prefix) {
            self.executable(&format!("the ELF interpreter of {located}"), &interp, depth + 1);
        }
    }

    /// Follow the shared libraries of the ELF at `exe` (canonical), breadth first.
    fn libraries(&mut self, needed_by: &str, exe: &str, deps: ElfDeps) {
        let exe_rpath = if deps.runpath.is_empty() { self.expand(&deps.rpath, exe) } else { Vec::new() };
        let mut queue = std::collections::VecDeque::from([(exe.to_string(), deps)]);
        while let Some((object, d)) = queue.pop_front() {
            if !self.libs_seen.insert(object.clone()) || self.libs_seen.len() > MAX_LIBS {
                continue;
            }
            // The lookup cap applies before any candidate is built.
            if self.lookups.get() > MAX_LIB_LOOKUPS {
                break;
            }
            let mut dirs = Vec::new();
            if d.runpath.is_empty() {
                dirs.extend(self.expand(&d.rpath, &object));
                dirs.extend(exe_rpath.iter().cloned());
            }
            dirs.extend(self.ld_library_path.iter().cloned());
            dirs.extend(self.expand(&d.runpath, &object));
            dirs.extend(self.conf_dirs());
            dirs.extend(default_dirs(d.is64, d.machine));
            let mut seen = std::collections::HashSet::new();
            dirs.retain(|x| seen.insert(x.clone()));
            let who = format!("/{object} (loaded for {needed_by})");
            for name in &d.needed {
                match self.find_library(name, &dirs, &d) {
                    Lib::After(canon) => {
                        if let Some(ld) = self.fs.get(&canon).and_then(|(_, e)| e.elf().cloned()) {
                            queue.push_back((canon, ld));
                        }
                    }
                    Lib::OnlyBefore(path) => self.blame_as(&who, name, &path),
                    Lib::Unchecked => {}
                    Lib::Nowhere => self.preexisting.push(Breakage {
                        needed_by: who.clone(),
                        path: name.clone(),
                        removed: Vec::new(),
                        rule: None,
                        origin: None,
                    }),
                }
            }
        }
        let note = format!(
            "shared libraries were looked for {MAX_LIB_LOOKUPS} times at most (a hostile image?): not all of them are checked"
        );
        if self.lookups.get() > MAX_LIB_LOOKUPS && !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Where the loader finds library `name` for an object of `d`'s class and machine.
    fn find_library(&self, name: &str, dirs: &[String], d: &ElfDeps) -> Lib {
        // Built one at a time, and no more than the lookups left (plus the one that says so).
        let left = MAX_LIB_LOOKUPS.saturating_sub(self.lookups.get()) + 1;
        let candidates: Box<dyn Iterator<Item = String>> = if name.contains('/') {
            // A name with a slash is a path, as the loader takes it (relative to the cwd).
            Box::new(std::iter::once(if name.starts_with('/') {
                name.to_string()
            } else {
                format!("{}/{name}", self.workdir)
            }))
        } else {
            Box::new(dirs.iter().take(left).map(move |dir| format!("{dir}/{name}")))
        };
        let compatible =
            |e: Entry<'_>| e.kind != Kind::Dir && e.elf().is_none_or(|l| l.is64 == d.is64 && l.machine == d.machine);
        let after = self.after();
        let mut before = None;
        for c in candidates {
            self.lookups.set(self.lookups.get() + 1);
            if self.lookups.get() > MAX_LIB_LOOKUPS {
                return Lib::Unchecked;
            }
            if let Some(canon) = self.fs.resolve_with(&c, true, &after) {
                if after(&canon).is_some_and(compatible) {
                    return Lib::After(canon);
                }
            }
            if before.is_none() {
                let canon = self.fs.resolve(&c, true);
                if canon.and_then(|p| self.fs.get(&p)).is_some_and(|(_, e)| compatible(e)) {
                    before = Some(c);
                }
            }
        }
        before.map_or(Lib::Nowhere, Lib::OnlyBefore)
    }

    /// RPATH/RUNPATH entries with `$ORIGIN` (the directory of the object) expanded.
    fn expand(&self, entries: &[String], object: &str) -> Vec<String> {
        let origin = format!("/{}", split_parent(object).0);
        entries
            .iter()
            .map(|e| e.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))
            .map(|e| if e.starts_with('/') { e } else { format!("{}/{e}", self.workdir) })
            .collect()
    }

    /// The directories of `/etc/ld.so.conf` and its includes, and of musl's path files, as the
    /// plan leaves them.
    fn conf_dirs(&mut self) -> Vec<String> {
        if let Some(d) = &self.conf_dirs {
            return d.clone();
        }
        let mut dirs = Vec::new();
        self.read_conf("etc/ld.so.conf", &mut dirs, &mut Default::default(), 0);
        let musl: Vec<String> = self
            .fs
            .iter()
            .filter(|(p, _, _)| p.starts_with("etc/ld-musl-") && p.ends_with(".path") && !self.plan.is_removed(p))
            .map(|(p, _, _)| p.to_string())
            .collect();
        for p in musl {
            let text = self.fs.prefix(&p).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            dirs.extend(text.split(['\n', ':']).map(str::trim).filter(|d| d.starts_with('/')).map(str::to_string));
        }
        self.conf_dirs = Some(dirs.clone());
        dirs
    }

    /// Each file is read once (`read`): includes that include each other end there.
    fn read_conf(
        &self,
        path: &str,
        dirs: &mut Vec<String>,
        read: &mut std::collections::HashSet<String>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        let after = self.after();
        let Some(canon) = self.fs.resolve_with(path, true, &after) else { return };
        if after(&canon).is_none() || !read.insert(canon.clone()) {
            return;
        }
        let Some(text) = self.fs.get(&canon).and_then(|(_, e)| e.prefix()) else { return };
        let text = String::from_utf8_lossy(text).into_owned();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if let Some(pattern) = line.strip_prefix("include").filter(|r| r.starts_with([' ', '\t'])) {
                for pat in pattern.split_whitespace() {
                    let pat = if pat.starts_with('/') { pat.to_string() } else { format!("/etc/{pat}") };
                    for file in self.glob(&pat) {
                        self.read_conf(&file, dirs, read, depth + 1);
                    }
                }
            } else if !line.starts_with("hwcap") {
                dirs.extend(line.split([' ', '\t', ':', ',']).filter(|d| d.starts_with('/')).map(str::to_string));
            }
        }
    }

    /// Files matching `pattern` (a glob in its last component), sorted as ldconfig reads them.
    fn glob(&self, pattern: &str) -> Vec<String> {
        let (dir, name) = split_parent(pattern);
        let Some(dir) = self.fs.resolve(dir, true) else { return Vec::new() };
        let Ok(m) = globset::Glob::new(name).map(|g| g.compile_matcher()) else { return Vec::new() };
        let mut out: Vec<String> = self
            .fs
            .iter()
            .filter(|(p, _, _)| split_parent(p).0 == dir && m.is_match(split_parent(p).1))
            .map(|(p, _, _)| p.to_string())
            .collect();
        out.sort();
        out
    }

    fn user(&mut self, user: &str) {
        let name = user.split(':').next().unwrap_or_default();
        if name.is_empty() || name.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        // A named user needs /etc/passwd after the plan.
        if self.plan.is_removed("etc/passwd") {
            self.blame(&format!("USER {user}"), "/etc/passwd");
        }
    }
}

/// Where a library was found.
enum Lib {
    /// Found after the plan, at this canonical path.
    After(String),
    /// Only before the plan (the plan removes it), at this path.
    OnlyBefore(String),
    /// Not even before: the image lacked it already.
    Nowhere,
    /// Past [`MAX_LIB_LOOKUPS`]: not looked for (never a refusal).
    Unchecked,
}

/// The loader's built-in directories for an ELF class and machine (glibc with Debian's
/// multiarch, and the usual others; musl's default is among them).
fn default_dirs(is64: bool, machine: u16) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(t) = multiarch(is64, machine) {
        v.push(format!("/lib/{t}"));
        v.push(format!("/usr/lib/{t}"));
    }
    if is64 {
        v.extend(["/lib64".to_string(), "/usr/lib64".to_string()]);
    }
    v.extend(["/lib".to_string(), "/usr/lib".to_string(), "/usr/local/lib".to_string()]);
    v
}

/// The `#!` line of a script, without the `#!`.
pub fn shebang(prefix: &[u8]) -> Option<String> {
    let rest = prefix.strip_prefix(b"#!")?;
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = String::from_utf8_lossy(&rest[..end]).trim().to_string();
    (!line.is_empty()).then_some(line)
}

/// PT_INTERP of an ELF executable, when its program headers and the string fit the prefix.
pub fn elf_interpreter(b: &[u8]) -> Option<String> {
    if b.len() < 52 || &b[..4] != b"\x7fELF" {
        return None;
    }
    let is64 = b[4] == 2;
    let le = b[5] == 1;
    let u16_at = |o: usize| -> Option<u64> {
        let s = b.get(o..o + 2)?;
        Some(if le { u16::from_le_bytes([s[0], s[1]]) } else { u16::from_be_bytes([s[0], s[1]]) } as u64)
    };
    let u32_at = |o: usize| -> Option<u64> {
        let s: [u8; 4] = b.get(o..o + 4)?.try_into().ok()?;
        Some(if le { u32::from_le_bytes(s) } else { u32::from_be_bytes(s) } as u64)
    };
    let u64_at = |o: usize| -> Option<u64> {
        let s: [u8; 8] = b.get(o..o + 8)?.try_into().ok()?;
        Some(if le { u64::from_le_bytes(s) } else { u64::from_be_bytes(s) })
    };
    let (phoff, phentsize, phnum) =
        if is64 { (u64_at(32)?, u16_at(54)?, u16_at(56)?) } else { (u32_at(28)?, u16_at(42)?, u16_at(44)?) };
    for i in 0..phnum.min(64) {
        let ph = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if u32_at(ph)? != 3 {
            continue;
        }
        let (off, size) = if is64 { (u64_at(ph + 8)?, u64_at(ph + 32)?) } else { (u32_at(ph + 4)?, u32_at(ph + 16)?) };
        let s = b.get(usize::try_from(off).ok()?..usize::try_from(off.checked_add(size)?).ok()?)?;
        let s = s.split(|&c| c == 0).next()?;
        return Some(String::from_utf8_lossy(s).into_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tests::{entry, layer};
    use crate::profile::load;

    fn image() -> FinalFs {
        let mut script = entry("usr/local/bin/run", Kind::File, None);
        script.mode = 0o755;
        script.prefix = Some(b"#!/usr/bin/env python3\nprint(1)\n".to_vec().into_boxed_slice());
        FinalFs::build(vec![layer(vec![
            entry("bin", Kind::Symlink, Some("usr/bin")),
            entry("usr/bin/dash", Kind::File, None),
            entry("usr/bin/sh", Kind::Symlink, Some("dash")),
            entry("usr/bin/env", Kind::File, None),
            entry("usr/bin/python3", Kind::Symlink, Some("python3.11")),
            entry("usr/bin/python3.11", Kind::File, None),
            script,
        ])])
    }

    #[test]
    fn shell_form_cmd_is_refused_by_strict_naming_bin_sh() {
        let fs = image();
        let plan = crate::plan::plan(&fs, &load(&["strict".into()]).unwrap());
        let cfg = serde_json::json!({"config": {"Cmd": ["/bin/sh", "-c", "python3 /app/server.py"]}});
        let g = Guard::check(&fs, &plan, &cfg, None);
        assert_eq!(g.broken.len(), 1);
        let msg = g.broken[0].to_string();
        assert!(msg.contains("/bin/sh") && msg.contains("@shells"), "{msg}");
        assert!(msg.contains(r#"keep = ["/usr/bin/sh", "/usr/bin/dash"]"#), "{msg}");
    }

    #[test]
    fn script_entrypoint_follows_env_shebang() {
        let fs = image();
        let plan = crate::plan::plan(&fs, &load(&["strict".into()]).unwrap());
        let cfg =
            serde_json::json!({"config": {"Entrypoint": ["run"], "Healthcheck": {"Test": ["CMD-SHELL", "true"]}}});
        let g = Guard::check(&fs, &plan, &cfg, None);
        // run → /usr/bin/env python3 are all kept; the CMD-SHELL health check needs /bin/sh.
        assert_eq!(g.broken.len(), 1, "{:?}", g.broken);
        assert!(g.broken[0].needed_by.starts_with("HEALTHCHECK"));
    }

    #[test]
    fn parses_elf_interpreter() {
        // A minimal 64-bit little-endian ELF header with one PT_INTERP program header.
        let mut b = vec![0u8; 200];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&3u32.to_le_bytes());
        b[72..80].copy_from_slice(&150u64.to_le_bytes());
        b[96..104].copy_from_slice(&28u64.to_le_bytes());
        b[150..178].copy_from_slice(b"/lib64/ld-linux-x86-64.so.2\0");
        assert_eq!(elf_interpreter(&b).as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert_eq!(elf_interpreter(&b[..100]), None);
        assert_eq!(shebang(b"#!/bin/sh -e\n"), Some("/bin/sh -e".into()));
    }

    fn elf(needed: &[&str], runpath: &[&str]) -> Option<Box<ElfDeps>> {
        Some(Box::new(ElfDeps {
            is64: true,
            machine: 62,
            dynamic: true,
            needed: needed.iter().map(|s| s.to_string()).collect(),
            runpath: runpath.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }))
    }

    fn file(path: &str, mode: u32, elf: Option<Box<ElfDeps>>, prefix: Option<&[u8]>) -> crate::scan::EntryInfo {
        let mut e = entry(path, Kind::File, None);
        e.mode = mode;
        e.set_elf(elf.map(|d| *d));
        e.prefix = prefix.map(|p| p.to_vec().into_boxed_slice());
        e
    }

    /// An app whose libraries come through RUNPATH with $ORIGIN, the default directories and
    /// ld.so.conf's include, one of them reached by a symlink, and one the image never had.
    fn libs_image() -> FinalFs {
        FinalFs::build(vec![layer(vec![
            file(
                "usr/bin/app",
                0o755,
                elf(&["libfoo.so.1", "libc.so.6", "libgone.so.9"], &["$ORIGIN/../lib/app"]),
                None,
            ),
            entry("usr/lib/app/libfoo.so.1", Kind::Symlink, Some("libfoo.so.1.2")),
            file("usr/lib/app/libfoo.so.1.2", 0o644, elf(&["libbar.so"], &[]), None),
            file("usr/lib/x86_64-linux-gnu/libc.so.6", 0o644, elf(&[], &[]), None),
            file("etc/ld.so.conf", 0o644, None, Some(b"# multiarch\ninclude /etc/ld.so.conf.d/*.conf\n")),
            file("etc/ld.so.conf.d/bar.conf", 0o644, None, Some(b"/opt/bar/lib\n")),
            file("opt/bar/lib/libbar.so", 0o644, elf(&["libc.so.6"], &[]), None),
            // Same name, another machine: the loader skips it.
            file(
                "usr/lib/libbar.so",
                0o644,
                Some(Box::new(ElfDeps { is64: false, machine: 3, ..Default::default() })),
                None,
            ),
        ])])
    }

    fn profile(remove: &str) -> crate::profile::Profile {
        let text = format!("name = \"t\"\nextends = \"passthrough\"\n[files]\nremove = [{remove}]\n");
        crate::profile::load_str("t.toml", &text).unwrap()
    }

    #[test]
    fn shared_libraries_are_followed_and_a_removed_one_refused() {
        let fs = libs_image();
        let cfg = serde_json::json!({"config": {"Entrypoint": ["/usr/bin/app"]}});
        // Nothing removed: every library resolves; the one the image never had is a note.
        let plan = crate::plan::plan(&fs, &profile(""));
        let g = Guard::check(&fs, &plan, &cfg, None);
        assert!(g.broken.is_empty(), "{:?}", g.broken);
        let pre: Vec<String> = g.preexisting.iter().map(ToString::to_string).collect();
        assert_eq!(pre, vec!["/usr/bin/app (loaded for ENTRYPOINT) needs libgone.so.9, which the image does not have"]);
        // libbar.so (found through ld.so.conf's include, needed by libfoo): refused, naming the
        // library, who needs it and the rule.
        let plan = crate::plan::plan(&fs, &profile("\"/opt/bar\""));
        let g = Guard::check(&fs, &plan, &cfg, None);
        let msgs: Vec<String> = g.broken.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(
            msgs[0].starts_with("/usr/lib/app/libfoo.so.1.2 (loaded for ENTRYPOINT) needs libbar.so (/opt/bar/lib/libbar.so in the image), which rule `/opt/bar`"),
            "{}",
            msgs[0]
        );
        assert!(msgs[0].contains(r#"keep = ["/opt/bar/lib/libbar.so"]"#), "{}", msgs[0]);
        // Removing the conf include's file takes its directory off the search path. Known limit:
        // that is a note (the library is not found), not a refusal naming the conf file.
        let plan = crate::plan::plan(&fs, &profile("\"/etc/ld.so.conf.d\""));
        let g = Guard::check(&fs, &plan, &cfg, None);
        assert_eq!(g.broken.len(), 0, "{:?}", g.broken);
        assert!(g.preexisting.iter().any(|b| b.path == "libbar.so"), "{:?}", g.preexisting);
        // The RUNPATH library behind a symlink: both names are in the keep hint.
        let plan = crate::plan::plan(&fs, &profile("\"/usr/lib/app\""));
        let g = Guard::check(&fs, &plan, &cfg, None);
        let msg = g.broken.first().map(ToString::to_string).unwrap_or_default();
        assert!(msg.contains("needs libfoo.so.1 (/usr/lib/app/libfoo.so.1 in the image)"), "{msg}");
        assert!(msg.contains(r#"keep = ["/usr/lib/app/libfoo.so.1", "/usr/lib/app/libfoo.so.1.2"]"#), "{msg}");
    }

    #[test]
    fn ld_so_conf_includes_that_include_each_other_end() {
        // 50 files each including all 50: read once each, in bounded time.
        let mut entries = vec![file("etc/ld.so.conf", 0o644, None, Some(b"include /etc/ld.so.conf.d/*.conf\n"))];
        for i in 0..50 {
            let text = format!("include /etc/ld.so.conf.d/*.conf\ninclude ../ld.so.conf\n/opt/l{i}\n");
            entries.push(file(&format!("etc/ld.so.conf.d/{i:02}.conf"), 0o644, None, Some(text.as_bytes())));
        }
        entries.push(file("usr/bin/app", 0o755, elf(&["libq.so"], &[]), None));
        entries.push(file("opt/l49/libq.so", 0o644, elf(&[], &[]), None));
        let fs = FinalFs::build(vec![layer(entries)]);
        let plan = crate::plan::plan(&fs, &profile(""));
        let g = Guard::check(&fs, &plan, &serde_json::json!({"config": {"Cmd": ["/usr/bin/app"]}}), None);
        assert!(g.broken.is_empty() && g.preexisting.is_empty(), "{:?} {:?}", g.broken, g.preexisting);
        // The 51 files each read once: their 52 directories searched once for libq.so.
        assert!(g.lookups() <= 64, "{} lookups", g.lookups());
    }

    #[test]
    fn hostile_library_searches_are_bounded() {
        // 256 names found nowhere, 5000 search directories: cut short with a note, no refusal.
        let conf: String = (0..5000).map(|i| format!("/d{i}\n")).collect();
        let names: Vec<String> = (0..256).map(|i| format!("libn{i}.so")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let fs = FinalFs::build(vec![layer(vec![
            file("etc/ld.so.conf", 0o644, None, Some(conf.as_bytes())),
            file("usr/bin/app", 0o755, elf(&names, &[]), None),
        ])]);
        let plan = crate::plan::plan(&fs, &profile(""));
        let g = Guard::check(&fs, &plan, &serde_json::json!({"config": {"Cmd": ["/usr/bin/app"]}}), None);
        // Work counted, not timed: the budget of look-ups, plus one per library asked for past it
        // (which is told so at once); 256 × 5000 would be 1.28M.
        assert!(g.lookups() <= MAX_LIB_LOOKUPS + 256, "{} lookups", g.lookups());
        assert!(g.broken.is_empty());
        assert_eq!(g.notes.len(), 1, "{:?}", g.notes);
        assert!(g.preexisting.len() < 256, "the search stopped early");
    }

    #[test]
    fn the_scan_reads_the_dynamic_section_of_every_elf_file() {
        // A library is not executable: its DT_NEEDED is read all the same.
        let lib = crate::layer::elf::tests::elf64(&["libc.so.6"], Some("$ORIGIN"), 3000);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(lib.len() as u64);
        b.append_data(&mut h, "usr/lib/libx.so.1", &lib[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o755);
        h.set_size(5);
        b.append_data(&mut h, "usr/bin/after", &b"after"[..]).unwrap();
        let t = b.into_inner().unwrap();
        let idx = crate::scan::scan_layer(&t[..], None, None, &crate::layer::Limits::default()).unwrap();
        let d = idx.entries.at(0).elf().unwrap();
        assert_eq!((d.needed.clone(), d.runpath.clone()), (vec!["libc.so.6".to_string()], vec!["$ORIGIN".to_string()]));
        assert!(idx.entries.at(0).prefix().is_none(), "a library keeps no prefix");
        assert_eq!(idx.entries.at(1).prefix(), Some(&b"after"[..]), "the stream stays in step");
    }

    #[test]
    fn a_package_removal_that_breaks_the_entrypoint_is_refused_naming_the_package() {
        let list = "/usr\n/usr/bin\n/usr/bin/python3.11\n/usr/bin/python3\n";
        let mut status = entry("var/lib/dpkg/status", Kind::File, None);
        let text = "Package: python3-minimal\nStatus: install ok installed\nVersion: 3.11\n\n";
        status.size = text.len() as u64;
        status.prefix = Some(text.as_bytes().to_vec().into_boxed_slice());
        let mut info = entry("var/lib/dpkg/info/python3-minimal.list", Kind::File, None);
        info.size = list.len() as u64;
        info.prefix = Some(list.as_bytes().to_vec().into_boxed_slice());
        let mut layers = vec![layer(vec![status, info])];
        layers.insert(0, (*image().layers[0]).clone());
        let fs = FinalFs::build(layers);
        let profile = crate::profile::load_str("t.toml", "[packages]\nremove = [\"python3-*\"]\n").unwrap();
        let plan = crate::plan::plan(&fs, &profile);
        let cfg = serde_json::json!({"config": {"Entrypoint": ["python3", "/app/server.py"]}});
        let g = Guard::check(&fs, &plan, &cfg, None);
        assert_eq!(g.broken.len(), 1, "{:?}", g.broken);
        let msg = g.broken[0].to_string();
        assert!(msg.contains("rule `package python3-minimal` from t"), "{msg}");
    }
}
