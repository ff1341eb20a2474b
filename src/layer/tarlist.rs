//! A tar stream's entries as harden's reader frames them, as one JSON document in the form
//! `integration/golist` prints from Go's `archive/tar`:
//! `{"entries": [{"name", "type", "size", "mode", "uid", "gid", "linkname", "offset"}...],
//! "error": null | "..."}`. The differential tests and the `tar_go_oracle` fuzz target compare
//! the two; the hidden `harden tar-list FILE` prints it.
//!
//! Owns: that document. Must not: frame entries itself (that is [`super::tar`]).

use super::tar::{RawEntry, TarReader};
use serde_json::{json, Value};
use std::io::{self, Read};

/// Printable ASCII kept, any other byte (and `\`) as `\xNN`: names are bytes, compared exactly.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

fn entry(e: &RawEntry) -> Value {
    json!({
        "name": escape(&e.name),
        "type": e.typeflag,
        "size": e.listed_size,
        "mode": e.mode(),
        "uid": e.uid(),
        "gid": e.gid(),
        "linkname": escape(&e.linkname),
        "offset": e.data_offset,
    })
}

/// Every entry of the plain tar stream `r`, each one's data read to its end, up to the end of
/// the archive or the first error.
pub fn listing(r: impl Read) -> Value {
    let mut tr = TarReader::new(r);
    let mut entries = Vec::new();
    let error = loop {
        match tr.next_entry() {
            Ok(None) => break None,
            Ok(Some(e)) => {
                entries.push(entry(&e));
                if let Err(err) = tr.copy_data(&mut io::sink()) {
                    break Some(err.to_string());
                }
            }
            Err(err) => break Some(err.to_string()),
        }
    };
    json!({ "entries": entries, "error": error })
}
