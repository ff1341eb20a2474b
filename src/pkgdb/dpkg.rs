//! dpkg's database as text: the `status` file (and distroless's `status.d/<pkg>` stanza files),
//! `info/<pkg>.list`, `*.md5sums`, `*.conffiles`. Parsing is strict — a line that is neither a
//! field, a continuation nor a stanza break is an error naming the file and line — and writing
//! back keeps every byte of what it does not edit.
//!
//! Owns: the dpkg formats. Must not: look at images (it is given text).

use std::fmt::Write as _;

/// Most fields one stanza may hold, and most stanzas a status file may hold: far beyond any
/// real database (Debian's whole archive is ~65k packages), small enough to refuse a bomb.
const MAX_FIELDS: usize = 1000;
const MAX_STANZAS: usize = 1 << 20;

/// One field: its name, the rest of its first line (after the colon, as written) and its
/// continuation lines (as written, without their newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub first: String,
    pub more: Vec<String>,
}

/// One stanza and the line it starts on (1-based), for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stanza {
    pub line: usize,
    pub fields: Vec<Field>,
}

impl Stanza {
    /// A field's one-line value, trimmed (case-insensitive name, as dpkg reads them).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.first.trim())
    }

    pub fn package(&self) -> &str {
        self.get("Package").unwrap_or("")
    }

    /// Whether dpkg counts it as present: `Status` is not `deinstall`/`purge` … `not-installed`/`config-files`.
    pub fn installed(&self) -> bool {
        let s: Vec<&str> = self.get("Status").unwrap_or("install ok installed").split_whitespace().collect();
        !matches!(s.last(), Some(&"not-installed") | Some(&"config-files"))
    }

    /// The names in `Depends` and `Pre-Depends` (alternatives included, versions and
    /// architecture qualifiers dropped).
    pub fn depends(&self) -> Vec<String> {
        let mut out = Vec::new();
        // A set, not a scan of `out` per name: that is quadratic in a hostile stanza.
        let mut seen = std::collections::HashSet::new();
        for f in ["Pre-Depends", "Depends"] {
            let Some(v) = self.fields.iter().find(|x| x.name.eq_ignore_ascii_case(f)) else { continue };
            let mut text = v.first.clone();
            for m in &v.more {
                text.push(' ');
                text.push_str(m);
            }
            for alt in text.split([',', '|']) {
                let name = alt.trim().split([' ', '(', ':']).next().unwrap_or("").trim();
                if !name.is_empty() && seen.insert(name.to_string()) {
                    out.push(name.to_string());
                }
            }
        }
        out
    }

    /// `Conffiles` paths (absolute, as written).
    pub fn conffiles(&self) -> Vec<String> {
        self.fields
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case("Conffiles"))
            .map(|f| f.more.iter().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// Drop the `Conffiles` lines naming a path `gone` says is gone; the field goes when empty.
    /// Returns whether anything changed.
    pub fn drop_conffiles(&mut self, gone: &dyn Fn(&str) -> bool) -> bool {
        let Some(i) = self.fields.iter().position(|x| x.name.eq_ignore_ascii_case("Conffiles")) else {
            return false;
        };
        let f = &mut self.fields[i];
        let before = f.more.len();
        f.more.retain(|l| !l.split_whitespace().next().is_some_and(gone));
        let changed = f.more.len() != before;
        if f.more.is_empty() && f.first.trim().is_empty() {
            self.fields.remove(i);
        }
        changed
    }
}

/// Parse a status-format file (`file` names it in errors).
pub fn parse(file: &str, text: &str) -> Result<Vec<Stanza>, String> {
    let mut out: Vec<Stanza> = Vec::new();
    let mut cur: Option<Stanza> = None;
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if let Some(s) = cur.take() {
                out.push(s);
                if out.len() > MAX_STANZAS {
                    return Err(format!("{file}:{n}: more than {MAX_STANZAS} stanzas"));
                }
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(f) = cur.as_mut().and_then(|s| s.fields.last_mut()) else {
                return Err(format!("{file}:{n}: continuation line outside a field"));
            };
            f.more.push(line.to_string());
            continue;
        }
        if line.starts_with('#') && cur.is_none() {
            continue;
        }
        let Some((name, rest)) = line.split_once(':') else {
            return Err(format!("{file}:{n}: expected `Field: value`, found {:?}", clip(line)));
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("{file}:{n}: bad field name {:?}", clip(name)));
        }
        let s = cur.get_or_insert_with(|| Stanza { line: n, fields: Vec::new() });
        if s.fields.len() >= MAX_FIELDS {
            return Err(format!("{file}:{n}: more than {MAX_FIELDS} fields in one stanza"));
        }
        s.fields.push(Field { name: name.to_string(), first: rest.to_string(), more: Vec::new() });
    }
    if let Some(s) = cur {
        out.push(s);
    }
    for s in &out {
        if s.get("Package").is_none_or(str::is_empty) {
            return Err(format!("{file}:{}: stanza without a Package field", s.line));
        }
    }
    Ok(out)
}

/// Write stanzas back in the status format (a blank line after each).
pub fn write(stanzas: &[Stanza]) -> String {
    let mut s = String::new();
    for st in stanzas {
        for f in &st.fields {
            let _ = writeln!(s, "{}:{}", f.name, f.first);
            for m in &f.more {
                s.push_str(m);
                s.push('\n');
            }
        }
        s.push('\n');
    }
    s
}

/// A `.list` or `.conffiles` file: one absolute path a line.
pub fn list_paths(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty())
}

/// The path of a `.md5sums` line (`<md5>  <path without leading slash>`), made absolute.
pub fn md5sums_path(line: &str) -> Option<String> {
    let (_, p) = line.split_once("  ").or_else(|| line.split_once(' '))?;
    let p = p.trim_start_matches(' ');
    (!p.is_empty()).then(|| format!("/{}", p.trim_start_matches('/')))
}

/// Keep the lines of a `.list`/`.conffiles` file whose path is not gone.
pub fn filter_list(text: &str, gone: &dyn Fn(&str) -> bool) -> String {
    keep_lines(text, |l| !gone(l.trim_end_matches('\r')))
}

/// Keep the lines of a `.md5sums` file whose path is not gone.
pub fn filter_md5sums(text: &str, gone: &dyn Fn(&str) -> bool) -> String {
    keep_lines(text, |l| md5sums_path(l.trim_end_matches('\r')).is_none_or(|p| !gone(&p)))
}

fn keep_lines(text: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for l in text.split_inclusive('\n') {
        let bare = l.trim_end_matches('\n');
        if bare.is_empty() || keep(bare) {
            out.push_str(l);
        }
    }
    out
}

fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: sudo\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\n\
Version: 1.9.13p3-1+deb12u1\nDepends: libaudit1 (>= 1:2.2.1), libc6 (>= 2.34), libpam0g (>= 0.99.7.1) | libpam-fake\n\
Conffiles:\n /etc/sudoers 45437b4e86fba2ab890ac81db2ec3606\n /etc/sudo.conf 1b1f4f1d1b1f4f1d1b1f4f1d1b1f4f1d\n\
Description: Provide limited super user privileges\n sudo is a program ...\n .\n more\n\n\
Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.36-9\n\
Pre-Depends: libgcc-s1\n\n";

    #[test]
    fn parses_and_writes_back_byte_for_byte() {
        let st = parse("status", STATUS).unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].package(), "sudo");
        assert_eq!(st[0].get("version"), Some("1.9.13p3-1+deb12u1"));
        assert_eq!(st[0].depends(), ["libaudit1", "libc6", "libpam0g", "libpam-fake"]);
        assert_eq!(st[1].depends(), ["libgcc-s1"]);
        assert_eq!(st[0].conffiles(), ["/etc/sudoers", "/etc/sudo.conf"]);
        assert_eq!(write(&st), STATUS);
    }

    #[test]
    fn conffiles_lose_gone_paths_and_the_field_goes_when_empty() {
        let mut st = parse("status", STATUS).unwrap();
        assert!(st[0].drop_conffiles(&|p| p == "/etc/sudoers"));
        assert_eq!(st[0].conffiles(), ["/etc/sudo.conf"]);
        assert!(!st[0].drop_conffiles(&|p| p == "/etc/nothing"));
        assert!(st[0].drop_conffiles(&|_| true));
        assert!(st[0].get("Conffiles").is_none());
        assert!(write(&st).contains("Description: Provide"));
    }

    #[test]
    fn hostile_status_files_fail_naming_file_and_line() {
        let e = parse("var/lib/dpkg/status", "Package: a\n\n continuation\n").unwrap_err();
        assert_eq!(e, "var/lib/dpkg/status:3: continuation line outside a field");
        let e = parse("s", "Package: a\nno colon here\n").unwrap_err();
        assert!(e.starts_with("s:2: expected `Field: value`"), "{e}");
        let e = parse("s", "Version: 1\n\nPackage: b\n").unwrap_err();
        assert_eq!(e, "s:1: stanza without a Package field");
        let many: String = (0..MAX_FIELDS + 1).map(|i| format!("F{i}: x\n")).collect();
        assert!(parse("s", &format!("Package: a\n{many}")).unwrap_err().contains("more than"));
        // A huge field is data, not an error; binary junk fails cleanly.
        let huge = format!("Package: a\nDescription: {}\n", "x".repeat(1 << 20));
        assert_eq!(parse("s", &huge).unwrap()[0].package(), "a");
        assert!(parse("s", "\u{0}\u{1}: \n").is_err());
    }

    #[test]
    fn lists_and_md5sums_drop_only_gone_paths() {
        let list = "/.\n/etc\n/etc/sudoers\n/usr/bin/sudo\n";
        assert_eq!(filter_list(list, &|p| p == "/usr/bin/sudo"), "/.\n/etc\n/etc/sudoers\n");
        let md5 = "0123  usr/bin/sudo\n4567  usr/share/doc/sudo/copyright\n";
        assert_eq!(filter_md5sums(md5, &|p| p == "/usr/bin/sudo"), "4567  usr/share/doc/sudo/copyright\n");
        assert_eq!(md5sums_path("abc  usr/a b"), Some("/usr/a b".into()));
        assert_eq!(md5sums_path("junk"), None);
    }

    #[test]
    fn status_says_what_is_installed() {
        let st = parse("s", "Package: a\nStatus: deinstall ok config-files\n\nPackage: b\n").unwrap();
        assert!(!st[0].installed());
        assert!(st[1].installed());
    }
}
