//! Arbitrary bytes as an rpm database (rpmdb.sqlite, Berkeley DB `Packages`) and as one rpm
//! header blob, read as harden reads them from an image. Errors are fine; panics, hangs and
//! allocations beyond the input's size are not.
#![no_main]

use harden::pkgdb::rpm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rpm::read("var/lib/rpm/rpmdb.sqlite", data);
    let _ = rpm::header::package(data, &mut (16 << 20));
});
