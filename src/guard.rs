//! Guard: check a plan against the config before anything is rewritten — the entrypoint/CMD
//! executable (absolute or on PATH, through symlinks), a script's shebang interpreter, an ELF
//! program interpreter, the health check's command (`CMD-SHELL` needs /bin/sh), the user.
//! A finding names the file, the rule that removes it, and the `keep` that would fix it.
//!
//! Owns: "will the result still start?". Must not: change the plan.

use crate::fs::FinalFs;
use crate::layer::tar::Kind;
use crate::plan::Plan;
use crate::scan::EntryInfo;
use serde::Serialize;
use serde_json::Value;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MAX_DEPTH: usize = 8;

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
    pub broken: Vec<Breakage>,
    /// Problems the source image already had (not caused by harden): reported, not refused.
    pub preexisting: Vec<Breakage>,
}

impl<'a> Guard<'a> {
    pub fn check(fs: &'a FinalFs, plan: &'a Plan, config: &Value, user: Option<&str>) -> Guard<'a> {
        let c = &config["config"];
        let path_var = c["Env"]
            .as_array()
            .and_then(|env| env.iter().filter_map(Value::as_str).find_map(|e| e.strip_prefix("PATH=")))
            .unwrap_or(DEFAULT_PATH);
        let mut g = Guard {
            fs,
            plan,
            path_dirs: path_var.split(':').filter(|d| !d.is_empty()).map(str::to_string).collect(),
            workdir: c["WorkingDir"].as_str().unwrap_or("/").to_string(),
            broken: Vec::new(),
            preexisting: Vec::new(),
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
    fn after(&self) -> impl Fn(&str) -> Option<&'a EntryInfo> + 'a {
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
        let before_link = self.fs.resolve(path, false);
        let before_target = self.fs.resolve(path, true);
        let mut removed: Vec<String> =
            [before_link, before_target].into_iter().flatten().filter(|p| self.plan.is_removed(p)).collect();
        removed.dedup();
        let rule = removed.first().and_then(|r| self.plan.removed.get(r));
        let b = Breakage {
            needed_by: needed_by.to_string(),
            path: path.to_string(),
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
        let Some(prefix) = self.fs.get(&canon).and_then(|(_, e)| e.prefix.clone()) else { return };
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
