//! Paths as harden keeps them: relative to the image root, no leading `/` or `./`, no `.`
//! components, `/`-separated.
//!
//! Owns: splitting, joining and normalising such paths. Must not: touch the filesystem.

pub fn split_parent(path: &str) -> (&str, &str) {
    // memrchr: the plan and the audit split every path of the image, several times.
    match memchr::memrchr(b'/', path.as_bytes()) {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Normalise a tar path: strip `./` and `/` prefixes and trailing `/`, collapse `.`
/// components. Returns the path and whether it tries to leave the root via `..`.
pub fn normalize(raw: &str) -> (String, bool) {
    let mut parts: Vec<&str> = Vec::new();
    let mut escapes = raw.starts_with('/');
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                escapes = true;
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (parts.join("/"), escapes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("./usr/bin/"), ("usr/bin".to_string(), false));
        assert_eq!(normalize("/etc/passwd"), ("etc/passwd".to_string(), true));
        assert_eq!(normalize("a/../../etc"), ("etc".to_string(), true));
    }
}
