//! CycloneDX 1.5 JSON of an image's packages, from its databases: one `library` component per
//! package (name, version, purl with arch and distro), the distro as an `operating-system`
//! component, the image (by digest) as `metadata.component`. No timestamp, components sorted,
//! `serialNumber` derived from the image digest: the same image gives the same bytes.
//!
//! Owns: the SBOM document. Must not: fetch images (it is given their final filesystem).

use super::{Database, Format};
use crate::fs::FinalFs;
use serde_json::{json, Value};

/// What an SBOM of an image needs, read before its digest is known (a rebuild's result).
pub struct Inventory {
    dbs: Vec<Database>,
    /// Package names the plan removes from the databases.
    removed: std::collections::BTreeSet<String>,
    distro: Option<(String, String)>,
}

impl Inventory {
    /// The packages of `fs`, less those `removed` (a plan's `packages.removed`).
    pub fn of(fs: &FinalFs, removed: &[String]) -> Result<Inventory, super::Unreadable> {
        Ok(Inventory { dbs: super::load(fs)?, removed: removed.iter().cloned().collect(), distro: os_release(fs) })
    }

    /// Why a database's packages are missing from the SBOM (an rpm database harden cannot
    /// read), one line each naming the file.
    pub fn notes(&self) -> Vec<String> {
        self.dbs
            .iter()
            .filter_map(|d| d.unreadable.as_ref().map(|w| format!("the SBOM lists no package of {}: {w}", d.path())))
            .collect()
    }

    /// Packages listed.
    pub fn count(&self) -> usize {
        self.dbs.iter().flat_map(|d| &d.packages).filter(|p| !self.removed.contains(&p.name)).count()
    }

    /// The CycloneDX document for the image `name` whose manifest digest is `digest`.
    pub fn cyclonedx(&self, name: &str, digest: &str) -> Value {
        let skip = |di: usize, pi: usize| self.removed.contains(&self.dbs[di].packages[pi].name);
        cyclonedx(&self.dbs, &skip, self.distro.as_ref(), name, digest)
    }
}

/// `ID` and `VERSION_ID` of the image's os-release (`/etc/os-release`, else `/usr/lib/os-release`).
pub fn os_release(fs: &FinalFs) -> Option<(String, String)> {
    let text = ["etc/os-release", "usr/lib/os-release"].iter().find_map(|p| fs.prefix(p))?;
    let text = String::from_utf8_lossy(text);
    let field = |k: &str| {
        text.lines().find_map(|l| {
            let v = l.strip_prefix(k)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').trim_matches('\'').to_string())
        })
    };
    Some((field("ID")?, field("VERSION_ID").unwrap_or_default()))
}

/// Percent-encode a purl segment (RFC 3986 unreserved characters stay).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:deb/debian/sudo@1.9.13p3-1%2Bdeb12u1?arch=amd64&distro=debian-12`;
/// `pkg:rpm/rhel/bash@5.1.8-9.el9?arch=x86_64&distro=rhel-9.4&epoch=1` (the purl spec puts an
/// rpm's epoch in a qualifier; the namespace is the os-release ID, left out when unknown).
pub fn purl(format: Format, distro: Option<&(String, String)>, name: &str, version: &str, arch: &str) -> String {
    let ns = distro.map(|d| d.0.as_str()).unwrap_or(match format {
        Format::Apk => "alpine",
        Format::Rpm => "",
        _ => "debian",
    });
    let mut q = Vec::new();
    if !arch.is_empty() {
        q.push(format!("arch={}", enc(arch)));
    }
    if let Some((id, v)) = distro.filter(|d| !d.1.is_empty()) {
        q.push(format!("distro={}", enc(&format!("{id}-{v}"))));
    }
    let mut version = version;
    if format == Format::Rpm {
        if let Some((e, vr)) = version.split_once(':').filter(|(e, _)| e.bytes().all(|b| b.is_ascii_digit())) {
            q.push(format!("epoch={e}"));
            version = vr;
        }
    }
    // Canonical purls sort qualifiers by key.
    q.sort();
    let q = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
    let ns = if ns.is_empty() { String::new() } else { format!("{}/", enc(&ns.to_ascii_lowercase())) };
    format!("pkg:{}/{ns}{}@{}{q}", format.purl_type(), enc(name), enc(version))
}

/// A UUID (version 5 layout) from the image digest: reproducible, distinct per image.
fn serial(digest: &str) -> String {
    let d = crate::digest::Digest::of(format!("harden-sbom/1\0{digest}").as_bytes());
    let mut h: Vec<char> = d.hex().chars().take(32).collect();
    h[12] = '5';
    h[16] = match h[16] {
        '0' | '4' | '8' | 'c' => '8',
        '1' | '5' | '9' | 'd' => '9',
        '2' | '6' | 'a' | 'e' => 'a',
        _ => 'b',
    };
    let s: String = h.into_iter().collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &s[0..8], &s[8..12], &s[12..16], &s[16..20], &s[20..32])
}

/// The SBOM of `dbs` (after any removals: `skip(db index, package index)` says which are gone)
/// for the image `name` with manifest digest `digest`.
pub fn cyclonedx(
    dbs: &[Database],
    skip: &dyn Fn(usize, usize) -> bool,
    distro: Option<&(String, String)>,
    name: &str,
    digest: &str,
) -> Value {
    let mut comps: Vec<Value> = Vec::new();
    for (di, db) in dbs.iter().enumerate() {
        for (pi, p) in db.packages.iter().enumerate() {
            if skip(di, pi) {
                continue;
            }
            let purl = purl(db.format, distro, &p.name, &p.version, &p.arch);
            comps.push(json!({
                "type": "library",
                "bom-ref": purl,
                "name": p.name,
                "version": p.version,
                "purl": purl,
            }));
        }
    }
    comps.sort_by(|a, b| a["bom-ref"].as_str().cmp(&b["bom-ref"].as_str()));
    comps.dedup_by(|a, b| a["bom-ref"] == b["bom-ref"]);
    if let Some((id, v)) = distro {
        comps.push(json!({"type": "operating-system", "bom-ref": format!("os:{id}-{v}"), "name": id, "version": v}));
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial(digest),
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "harden", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"type": "container", "bom-ref": digest, "name": name, "version": digest},
        },
        "components": comps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_are_encoded_and_carry_arch_and_distro() {
        let d = ("debian".to_string(), "12".to_string());
        assert_eq!(
            purl(Format::Dpkg, Some(&d), "sudo", "1.9.13p3-1+deb12u1", "amd64"),
            "pkg:deb/debian/sudo@1.9.13p3-1%2Bdeb12u1?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            purl(Format::Dpkg, Some(&d), "perl", "1:5.36", "all"),
            "pkg:deb/debian/perl@1%3A5.36?arch=all&distro=debian-12"
        );
        assert_eq!(purl(Format::Apk, None, "musl", "1.2.4-r2", ""), "pkg:apk/alpine/musl@1.2.4-r2");
        let r = ("rhel".to_string(), "9.4".to_string());
        assert_eq!(
            purl(Format::Rpm, Some(&r), "bash", "1:5.1.8-9.el9", "x86_64"),
            "pkg:rpm/rhel/bash@5.1.8-9.el9?arch=x86_64&distro=rhel-9.4&epoch=1"
        );
        assert_eq!(
            purl(Format::Rpm, None, "tzdata", "2024a-1.el9", "noarch"),
            "pkg:rpm/tzdata@2024a-1.el9?arch=noarch"
        );
    }

    #[test]
    fn serial_numbers_are_reproducible_uuids() {
        let a = serial("sha256:00");
        assert_eq!(a, serial("sha256:00"));
        assert_ne!(a, serial("sha256:01"));
        let u = a.strip_prefix("urn:uuid:").unwrap();
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('5') && "89ab".contains(&parts[3][..1]), "{u}");
    }
}
