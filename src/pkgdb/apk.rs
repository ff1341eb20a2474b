//! apk's database as text: `lib/apk/db/installed` (one stanza per package, `X:value` lines; per
//! directory an `F:` line, an optional `M:`, then per file `R:` with optional `a:` and `Z:`) and
//! `etc/apk/world` (the names asked for). Strict parsing, byte-preserving writing.
//!
//! Owns: the apk formats. Must not: look at images (it is given text).

/// Most lines one stanza may hold: far above any package (a big one lists ~50k files, 3 lines each).
const MAX_LINES: usize = 1 << 20;

/// One package: its lines as written, and the line it starts on (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkg {
    pub line: usize,
    pub lines: Vec<String>,
}

impl Pkg {
    fn field(&self, key: char) -> Option<&str> {
        self.lines.iter().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
    }
    pub fn name(&self) -> &str {
        self.field('P').unwrap_or("")
    }
    pub fn version(&self) -> &str {
        self.field('V').unwrap_or("")
    }
    pub fn arch(&self) -> &str {
        self.field('A').unwrap_or("")
    }
    /// `D:` names (constraints dropped; `!conflicts` skipped; `so:`/`cmd:` kept as written).
    pub fn depends(&self) -> Vec<String> {
        self.field('D')
            .unwrap_or("")
            .split_whitespace()
            .filter(|d| !d.starts_with('!'))
            .map(|d| d.split(['<', '>', '=', '~']).next().unwrap_or("").to_string())
            .filter(|d| !d.is_empty())
            .collect()
    }
    /// `(directory, files)` pairs, absolute.
    pub fn owned(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for l in &self.lines {
            if let Some(d) = l.strip_prefix("F:") {
                out.push((format!("/{}", d.trim_matches('/')), Vec::new()));
            } else if let Some(r) = l.strip_prefix("R:") {
                if let Some((dir, files)) = out.last_mut() {
                    files.push(if dir == "/" { format!("/{r}") } else { format!("{dir}/{r}") });
                }
            }
        }
        out
    }

    /// Drop the `R:` lines (with their `a:`/`Z:`) of gone files, and the `F:` lines (with `M:`)
    /// of gone directories left without files. Returns whether anything changed.
    pub fn trim(&mut self, gone: &dyn Fn(&str) -> bool) -> bool {
        // First pass: which file lines go, and which directories keep a file.
        let mut out: Vec<String> = Vec::with_capacity(self.lines.len());
        let mut dir: Option<String> = None;
        let mut dir_at: Option<usize> = None;
        let mut dir_files = 0usize;
        let mut skipping_file = false;
        let close = |out: &mut Vec<String>, dir: &Option<String>, at: Option<usize>, files: usize| {
            if let (Some(d), Some(at)) = (dir, at) {
                if files == 0 && gone(d) {
                    // F: and its M:/file-less lines up to the next block.
                    out.truncate(at);
                }
            }
        };
        for l in &self.lines {
            if let Some(d) = l.strip_prefix("F:") {
                close(&mut out, &dir, dir_at, dir_files);
                dir = Some(format!("/{}", d.trim_matches('/')));
                dir_at = Some(out.len());
                dir_files = 0;
                skipping_file = false;
                out.push(l.clone());
                continue;
            }
            if let Some(r) = l.strip_prefix("R:") {
                let d = dir.as_deref().unwrap_or("");
                let path = if d == "/" { format!("/{r}") } else { format!("{d}/{r}") };
                skipping_file = gone(&path);
                if !skipping_file {
                    dir_files += 1;
                    out.push(l.clone());
                }
                continue;
            }
            if skipping_file && (l.starts_with("a:") || l.starts_with("Z:")) {
                continue;
            }
            if dir.is_some() && !(l.starts_with("M:") || l.starts_with("a:") || l.starts_with("Z:")) {
                // A package-level field after the file list ends the last block.
                close(&mut out, &dir, dir_at, dir_files);
                dir = None;
                dir_at = None;
            }
            skipping_file = false;
            out.push(l.clone());
        }
        close(&mut out, &dir, dir_at, dir_files);
        let changed = out != self.lines;
        self.lines = out;
        changed
    }
}

/// Parse `lib/apk/db/installed` (`file` names it in errors).
pub fn parse(file: &str, text: &str) -> Result<Vec<Pkg>, String> {
    let mut out = Vec::new();
    let mut cur: Option<Pkg> = None;
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        if line.is_empty() {
            if let Some(p) = cur.take() {
                out.push(p);
            }
            continue;
        }
        let b = line.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_alphabetic() || b[1] != b':' {
            return Err(format!(
                "{file}:{n}: expected `X:value`, found {:?}",
                line.chars().take(60).collect::<String>()
            ));
        }
        let p = cur.get_or_insert_with(|| Pkg { line: n, lines: Vec::new() });
        if p.lines.len() >= MAX_LINES {
            return Err(format!("{file}:{n}: more than {MAX_LINES} lines in one package"));
        }
        p.lines.push(line.to_string());
    }
    if let Some(p) = cur {
        out.push(p);
    }
    for p in &out {
        if p.name().is_empty() {
            return Err(format!("{file}:{}: package without a P: line", p.line));
        }
        for (d, files) in p.owned() {
            for f in std::iter::once(&d).chain(&files) {
                if f.split('/').any(|c| c == "..") {
                    return Err(format!("{file}:{}: package {} names a path leaving the root: {f}", p.line, p.name()));
                }
            }
        }
    }
    Ok(out)
}

/// Write packages back (a blank line after each, as apk does).
pub fn write(pkgs: &[Pkg]) -> String {
    let mut s = String::new();
    for p in pkgs {
        for l in &p.lines {
            s.push_str(l);
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// `etc/apk/world` without the names `removed` says are gone (`name`, `name>=1`, `name@tag`).
pub fn filter_world(text: &str, removed: &dyn Fn(&str) -> bool) -> String {
    let kept: Vec<&str> =
        text.split_whitespace().filter(|w| !removed(w.split(['<', '>', '=', '~', '@']).next().unwrap_or(""))).collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("{}\n", kept.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written from the format (apk-tools src/database.c, `apk_db_write_fdb`).
    const INSTALLED: &str = "C:Q1abc=\nP:busybox\nV:1.36.1-r15\nA:x86_64\nS:500000\nI:900000\nT:Size optimized toolbox\n\
o:busybox\nD:so:libc.musl-x86_64.so.1\np:/bin/sh cmd:busybox=1.36.1-r15\n\
F:bin\nR:busybox\na:0:0:755\nZ:Q1aaa=\nR:sh\nZ:Q1bbb=\nF:etc\nR:securetty\nZ:Q1ccc=\nF:etc/busybox-paths.d\nM:0:0:755\n\n\
C:Q1def=\nP:ssl_client\nV:1.36.1-r15\nA:x86_64\nD:so:libc.musl-x86_64.so.1 busybox=1.36.1-r15 !foo\n\
F:usr\nF:usr/bin\nR:ssl_client\nZ:Q1ddd=\n\n";

    #[test]
    fn parses_and_writes_back() {
        let p = parse("lib/apk/db/installed", INSTALLED).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].name(), p[0].version(), p[0].arch()), ("busybox", "1.36.1-r15", "x86_64"));
        assert_eq!(p[1].depends(), ["so:libc.musl-x86_64.so.1", "busybox"]);
        let owned = p[0].owned();
        assert_eq!(owned[0], ("/bin".to_string(), vec!["/bin/busybox".to_string(), "/bin/sh".to_string()]));
        assert_eq!(owned[2].0, "/etc/busybox-paths.d");
        assert_eq!(write(&p), INSTALLED);
    }

    #[test]
    fn trim_drops_files_with_their_checksums_and_empty_gone_dirs() {
        let mut p = parse("i", INSTALLED).unwrap();
        let gone = |x: &str| matches!(x, "/bin/sh" | "/etc/securetty" | "/etc" | "/etc/busybox-paths.d");
        assert!(p[0].trim(&gone));
        let text = write(&p[..1]);
        assert!(text.contains("R:busybox\na:0:0:755\nZ:Q1aaa=\n"), "{text}");
        assert!(!text.contains("R:sh") && !text.contains("Q1bbb"), "{text}");
        assert!(!text.contains("F:etc") && !text.contains("securetty") && !text.contains("M:0:0:755"), "{text}");
        assert!(!p[1].trim(&gone), "nothing of ssl_client is gone");
    }

    #[test]
    fn a_shared_directory_that_stays_keeps_its_line() {
        let mut p = parse("i", INSTALLED).unwrap();
        // All of ssl_client's files go, but /usr and /usr/bin are used by others: not gone.
        assert!(p[1].trim(&|x| x == "/usr/bin/ssl_client"));
        let text = write(&p[1..]);
        assert!(text.contains("F:usr\nF:usr/bin\n") && !text.contains("ssl_client\nZ"), "{text}");
    }

    #[test]
    fn hostile_databases_fail_naming_file_and_line() {
        assert_eq!(parse("i", "P:a\nnot a field\n").unwrap_err(), "i:2: expected `X:value`, found \"not a field\"");
        assert_eq!(parse("i", "V:1\n").unwrap_err(), "i:1: package without a P: line");
        assert!(parse("i", "P:a\nF:../../etc\nR:x\n").unwrap_err().contains("leaving the root"));
        assert!(parse("i", "P:a\nR:orphan\n").is_ok(), "an R: before any F: is ignored, not a panic");
    }

    #[test]
    fn world_loses_removed_names() {
        assert_eq!(
            filter_world("alpine-base\nbusybox>=1.3\ncurl@edge\n", &|n| n == "busybox"),
            "alpine-base\ncurl@edge\n"
        );
        assert_eq!(filter_world("busybox\n", &|n| n == "busybox"), "");
    }
}
