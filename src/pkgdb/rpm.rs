//! rpm databases, read-only: `rpmdb.sqlite` (RHEL 9, Fedora ≥ 36: [`sqlite`]) and Berkeley DB
//! `Packages` (RHEL/CentOS ≤ 8, Amazon Linux 2: [`bdb`]) hold one header blob per installed
//! package ([`header`]), which gives its name, `E:V-R`, arch, owned paths and requires. SUSE's
//! ndb (`Packages.db`) is recognised and refused as not supported. harden never writes these
//! files: editing them truthfully is rpm's job (`rpm -e --justdb`), which harden does not run.
//!
//! Owns: choosing the reader by the file's magic, and the bounds on what a database may expand
//! into. Must not: look at images (it is given the file's bytes), edit anything.

pub mod bdb;
pub mod header;
pub mod sqlite;

use super::Package;

/// Most bytes of paths one database may list (see [`header::PATH_COST`]): far above any real
/// image (a full Fedora workstation lists ~15 MiB), small enough to refuse a bomb.
pub const MAX_PATHS: usize = 128 << 20;

/// The packages the database `file` (its bytes: `data`) lists, or why it cannot be read,
/// naming the file.
pub fn read(file: &str, data: &[u8]) -> Result<Vec<Package>, String> {
    let at = |e: String| format!("/{file}: {e}");
    let blobs = if data.starts_with(b"SQLite format 3\0") {
        sqlite::packages(data).map_err(at)?
    } else if data.starts_with(b"RpmP") {
        return Err(at("an ndb database (SUSE); harden reads sqlite and Berkeley DB rpm databases only".into()));
    } else if data.is_empty() {
        return Err(at("empty".into()));
    } else {
        bdb::values(data).map_err(at)?
    };
    let mut budget = MAX_PATHS;
    let mut out = Vec::with_capacity(blobs.len());
    for (i, b) in blobs.iter().enumerate() {
        match header::package(b, &mut budget) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => {}
            Err(e) => return Err(at(format!("header {} of {}: {e}", i + 1, blobs.len()))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sqlite_and_bdb_alike_and_names_the_file_when_it_cannot() {
        let blobs = vec![
            header::tests::blob("bash", None, &["/usr/bin/bash"]),
            header::tests::blob("gpg-pubkey", None, &[]),
            header::tests::blob("coreutils", Some(1), &["/usr/bin/ls", "/usr/bin/cp"]),
        ];
        for db in [sqlite::tests::build(&blobs), bdb::tests::build(&blobs)] {
            let p = read("var/lib/rpm/x", &db).unwrap();
            let names: Vec<(&str, &str)> = p.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
            assert_eq!(names, [("bash", "1.2-3.el9"), ("coreutils", "1:1.2-3.el9")]);
            assert_eq!(p[1].paths, ["/usr/bin/ls", "/usr/bin/cp"]);
        }
        let e = read("var/lib/rpm/Packages.db", b"RpmP\0\0\0\0").unwrap_err();
        assert!(e.starts_with("/var/lib/rpm/Packages.db: an ndb database"), "{e}");
        assert_eq!(read("var/lib/rpm/Packages", b"").unwrap_err(), "/var/lib/rpm/Packages: empty");
        let bad = sqlite::tests::build(&[b"\0\0\0\x01junk".to_vec()]);
        let e = read("var/lib/rpm/rpmdb.sqlite", &bad).unwrap_err();
        assert!(e.starts_with("/var/lib/rpm/rpmdb.sqlite: header 1 of 1: "), "{e}");
    }

    /// Files made by rpm 4.18 itself (`rpm --initdb` + `rpm -i` of an `rpmbuild`-built package)
    /// and by Berkeley DB's `db5.3_load` from the headers `rpmdb --exportdb` printed; also the
    /// fuzz seeds.
    #[test]
    fn reads_databases_rpm_and_berkeley_db_wrote() {
        for (file, data) in [
            ("rpmdb.sqlite", &include_bytes!("../../fuzz/seeds/rpm_read/rpmdb.sqlite")[..]),
            ("Packages", &include_bytes!("../../fuzz/seeds/rpm_read/Packages-bdb")[..]),
        ] {
            let p = read(file, data).unwrap();
            assert_eq!(p.len(), 1, "{file}");
            assert_eq!(
                (p[0].name.as_str(), p[0].version.as_str(), p[0].arch.as_str()),
                ("hello-harden", "3:1.0-2", "noarch")
            );
            assert_eq!(
                p[0].paths,
                ["/usr/bin/hello-harden", "/usr/share/doc/hello-harden", "/usr/share/doc/hello-harden/README"]
            );
        }
    }
}
