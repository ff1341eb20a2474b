//! Where package databases live, and which of their files the scan keeps whole.
//!
//! Owns: the database paths. Must not: depend on other modules (the scan asks it, and
//! [`crate::pkgdb`] reads what the scan kept).

/// Largest database file read whole; a bigger one is refused when the plan needs it, naming it.
pub const MAX_FILE: u64 = 64 << 20;

pub const DPKG_STATUS: &str = "var/lib/dpkg/status";
pub const DPKG_INFO: &str = "var/lib/dpkg/info/";
pub const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d/";
pub const APK_INSTALLED: [&str; 2] = ["lib/apk/db/installed", "usr/lib/apk/db/installed"];
pub const APK_WORLD: &str = "etc/apk/world";
/// rpm databases, in the order harden prefers one when an image holds several (a half-done
/// migration): sqlite (what rpm ≥ 4.16 writes), Berkeley DB, ndb.
pub const RPM_DBS: [&str; 7] = [
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/share/rpm/rpmdb.sqlite",
    "var/lib/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages.db",
];

/// Whether the scan keeps this file whole: a database file harden reads or edits.
pub fn is_database_file(path: &str) -> bool {
    if path == DPKG_STATUS || APK_INSTALLED.contains(&path) || path == APK_WORLD || RPM_DBS.contains(&path) {
        return true;
    }
    if let Some(name) = path.strip_prefix(DPKG_INFO) {
        return !name.contains('/') && [".list", ".md5sums", ".conffiles"].iter().any(|s| name.ends_with(s));
    }
    path.strip_prefix(DPKG_STATUS_D).is_some_and(|n| !n.contains('/'))
}
