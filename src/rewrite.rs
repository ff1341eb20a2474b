//! Rewrite: execute a [`LayerPlan`] on one layer as a stream — decompress, filter entry by
//! entry, re-tar, recompress — hashing the tar (diff_id) and the blob (digest) on the way.
//! Untouched entries are copied byte for byte, PAX records and long names included.
//!
//! Owns: turning plan decisions into bytes. Must not: decide what to drop.

use crate::digest::{Digest, HashingWriter};
use crate::layer::codec::{self, Encoder, OutputCodec};
use crate::layer::tar::{bad, Kind, RawEntry, TarReader, TarWriter};
use crate::layer::Limits;
use crate::plan::{EntryChange, LayerPlan};
use std::io::{self, Read, Write};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RewriteStats {
    pub removed: u64,
    pub changed: u64,
}

/// The result of rewriting one layer.
#[derive(Clone, Debug)]
pub struct LayerRewrite {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub stats: RewriteStats,
}

/// Rewrite `input` (a layer blob in any supported codec) into `out` per `plan`, reading within
/// `limits` (size and ratio; the input was scanned under the same ones).
pub fn rewrite_layer<W: Write>(
    input: impl Read,
    out: W,
    plan: &LayerPlan,
    codec: OutputCodec,
    limits: &Limits,
) -> io::Result<(W, LayerRewrite)> {
    let (_, plain) = codec::limited_decoder(input, limits)?;
    let blob = HashingWriter::new(out);
    let enc = Encoder::new(codec, blob)?;
    let tar_hash = HashingWriter::new(enc);
    let mut tw = TarWriter::new(tar_hash);
    let mut tr = TarReader::new(plain);
    let mut stats = RewriteStats::default();
    while let Some(e) = tr.next_entry()? {
        let change = plan.changes.get(&e.path);
        match change {
            None if header_consistent(&e) => {
                tw.w.write_all(&e.meta)?;
                tw.write_header(&e.header)?;
                tr.copy_data(&mut tw.w)?;
                tw.pad(e.size)?;
            }
            None => {
                write_changed(&mut tw, &mut tr, &e, &EntryChange::default(), None)?;
            }
            Some(c) if c.remove && c.promote_to.is_none() => {
                stats.removed += 1;
            }
            Some(c) => {
                let promoted = c.promote_to.as_ref().map(|p| (p.as_str(), plan.changes.get(p)));
                write_changed(&mut tw, &mut tr, &e, c, promoted)?;
                stats.changed += 1;
            }
        }
    }
    tr.finish()?;
    let tar_hash = tw.finish()?;
    let (enc, diff_id, _) = tar_hash.finish();
    let blob = enc.finish()?;
    let (out, digest, size) = blob.finish();
    Ok((out, LayerRewrite { digest, size, diff_id, stats }))
}

/// Entries without data must say size 0; anything else is rewritten so framing stays sane.
fn header_consistent(e: &RawEntry) -> bool {
    e.header.entry_size().map(|s| s == e.size).unwrap_or(false)
}

/// Emit an entry with a changed header: mode, capabilities, a promotion (a removed
/// hardlink target re-emitted as a regular file at its first kept link's path) or a relink.
fn write_changed<W: Write, R: Read>(
    tw: &mut TarWriter<W>,
    tr: &mut TarReader<R>,
    e: &RawEntry,
    c: &EntryChange,
    promoted: Option<(&str, Option<&EntryChange>)>,
) -> io::Result<()> {
    let mut h = e.header.clone();
    let mut records: Vec<(String, Vec<u8>)> =
        e.pax.iter().filter(|(k, _)| k != "path" && k != "linkpath" && k != "size").cloned().collect();
    let mut path = e.path.clone();
    let mut link = e.link.clone();
    let mut mode = c.mode;
    let mut strip_caps = c.strip_caps;
    if let Some((to, link_change)) = promoted {
        path = to.to_string();
        if let Some(lc) = link_change {
            mode = lc.mode.or(mode);
            strip_caps |= lc.strip_caps;
        }
    }
    if let Some(to) = &c.relink_to {
        link = Some(to.clone());
    }
    if strip_caps {
        records.retain(|(k, _)| k != "SCHILY.xattr.security.capability");
    }
    if let Some(m) = mode {
        h.set_mode(m);
    }
    h.set_size(e.size);
    if e.kind == Kind::Dir && !path.ends_with('/') {
        path.push('/');
    }
    if h.set_path(&path).is_err() {
        records.push(("path".into(), path.clone().into_bytes()));
        set_truncated(&mut h.as_old_mut().name, &path);
    }
    if let Some(l) = &link {
        if h.set_link_name(l).is_err() {
            records.push(("linkpath".into(), l.clone().into_bytes()));
            set_truncated(&mut h.as_old_mut().linkname, l);
        }
    }
    h.set_cksum();
    tw.write_pax(&records)?;
    tw.write_header(&h)?;
    let n = tr.copy_data(&mut tw.w)?;
    if n != e.size {
        return Err(bad("entry data shorter than its header says"));
    }
    tw.pad(e.size)
}

fn set_truncated(field: &mut [u8; 100], s: &str) {
    field.fill(0);
    let b = s.as_bytes();
    let n = b.len().min(100);
    field[..n].copy_from_slice(&b[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::codec::decoder;

    /// Build a tar with GNU tar-like edge cases using the tar crate's builder.
    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add =
            |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>, pax: &[(&str, &[u8])]| {
                if !pax.is_empty() {
                    b.append_pax_extensions(pax.iter().copied()).unwrap();
                }
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(kind);
                h.set_mode(mode);
                h.set_uid(1000);
                h.set_gid(1000);
                h.set_mtime(1_700_000_000);
                h.set_size(data.len() as u64);
                match link {
                    Some(l) => b.append_link(&mut h, path, l).unwrap(),
                    None => b.append_data(&mut h, path, data).unwrap(),
                }
            };
        add("usr/", tar::EntryType::Directory, 0o755, b"", None, &[]);
        add(
            "usr/bin/ping",
            tar::EntryType::Regular,
            0o755,
            b"\x7fELFping",
            None,
            &[("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02\x00\x20\x00\x00")],
        );
        add("usr/bin/su", tar::EntryType::Regular, 0o4755, b"su-binary", None, &[]);
        add("usr/bin/perl5.36.0", tar::EntryType::Regular, 0o755, b"perl", None, &[]);
        add("usr/bin/perl", tar::EntryType::Link, 0o755, b"", Some("usr/bin/perl5.36.0"), &[]);
        let long = format!("opt/{}/file", "d".repeat(150));
        add(&long, tar::EntryType::Regular, 0o644, b"long", None, &[]);
        add("opt/longlink", tar::EntryType::Symlink, 0o777, b"", Some(&format!("/{}", "t".repeat(120))), &[]);
        add("root/.env", tar::EntryType::Regular, 0o600, b"SECRET=1", None, &[]);
        add("app/a", tar::EntryType::Link, 0o600, b"", Some("root/.env"), &[]);
        add("app/b", tar::EntryType::Link, 0o600, b"", Some("root/.env"), &[]);
        add("dev/null", tar::EntryType::Char, 0o666, b"", None, &[]);
        add("run/fifo", tar::EntryType::Fifo, 0o644, b"", None, &[]);
        add("etc/.wh.gone", tar::EntryType::Regular, 0o644, b"", None, &[]);
        add("var/.wh..wh..opq", tar::EntryType::Regular, 0o644, b"", None, &[]);
        b.into_inner().unwrap()
    }

    /// (path, kind, mode, link, data, has security.capability)
    type Seen = (String, Kind, u32, Option<String>, Vec<u8>, bool);

    fn entries(blob: &[u8]) -> Vec<Seen> {
        let (_, r) = decoder(blob).unwrap();
        let mut tr = TarReader::new(r);
        let mut out = Vec::new();
        while let Some(e) = tr.next_entry().unwrap() {
            let mut data = Vec::new();
            tr.copy_data(&mut data).unwrap();
            out.push((e.path.clone(), e.kind, e.mode(), e.link.clone(), data, e.has_xattr("security.capability")));
        }
        out
    }

    #[test]
    fn unchanged_plan_copies_every_entry_verbatim() {
        let input = sample();
        let (out, rw) =
            rewrite_layer(&input[..], Vec::new(), &LayerPlan::default(), OutputCodec::Gzip(6), &Limits::default())
                .unwrap();
        let (_, mut d) = decoder(&out[..]).unwrap();
        let mut plain = Vec::new();
        d.read_to_end(&mut plain).unwrap();
        // Same entries byte for byte; only the end-of-archive padding may differ.
        assert_eq!(&plain[..plain.len() - 1024], &input[..plain.len() - 1024]);
        assert_eq!(rw.diff_id, Digest::of(&plain));
        assert_eq!(rw.digest, Digest::of(&out));
    }

    #[test]
    fn applies_removals_modes_caps_and_promotes_hardlinks() {
        let input = sample();
        let mut plan = LayerPlan::default();
        let ch = |f: fn(&mut EntryChange)| {
            let mut c = EntryChange::default();
            f(&mut c);
            c
        };
        plan.changes.insert("usr/bin/su".into(), ch(|c| c.mode = Some(0o755)));
        plan.changes.insert("usr/bin/ping".into(), ch(|c| c.strip_caps = true));
        plan.changes.insert(
            "root/.env".into(),
            ch(|c| {
                c.remove = true;
                c.promote_to = Some("app/a".into())
            }),
        );
        plan.changes.insert("app/a".into(), ch(|c| c.remove = true));
        plan.changes.insert("app/b".into(), ch(|c| c.relink_to = Some("app/a".into())));
        let long = format!("opt/{}/file", "d".repeat(150));
        plan.changes.insert(long.clone(), ch(|c| c.mode = Some(0o600)));
        let (out, rw) = rewrite_layer(&input[..], Vec::new(), &plan, OutputCodec::Gzip(6), &Limits::default()).unwrap();
        let got = entries(&out);
        let find = |p: &str| got.iter().find(|e| e.0 == p).unwrap_or_else(|| panic!("{p} missing from {got:?}"));
        assert_eq!(find("usr/bin/su").2, 0o755);
        assert!(!find("usr/bin/ping").5);
        assert_eq!(find("usr/bin/ping").4, b"\x7fELFping");
        assert!(got.iter().all(|e| e.0 != "root/.env"));
        assert_eq!(find("app/a").1, Kind::File);
        assert_eq!(find("app/a").4, b"SECRET=1");
        assert_eq!(find("app/b").3.as_deref(), Some("app/a"));
        assert_eq!(find(&long).2, 0o600);
        assert_eq!(find("opt/longlink").3.as_deref(), Some(format!("/{}", "t".repeat(120)).as_str()));
        assert_eq!(find("usr/bin/perl").3.as_deref(), Some("usr/bin/perl5.36.0"));
        assert_eq!(find("dev/null").1, Kind::CharDev);
        assert_eq!(find("run/fifo").1, Kind::Fifo);
        assert!(got.iter().any(|e| e.0 == "etc/.wh.gone"));
        assert!(got.iter().any(|e| e.0 == "var/.wh..wh..opq"));
        assert_eq!((rw.stats.changed, rw.stats.removed), (5, 1));
        // Deterministic: the same input and plan give the same digest.
        let (_, again) =
            rewrite_layer(&input[..], Vec::new(), &plan, OutputCodec::Gzip(6), &Limits::default()).unwrap();
        assert_eq!(again.digest, rw.digest);
    }

    #[test]
    fn truncated_and_corrupt_input_are_errors() {
        let input = sample();
        let mut gz = Encoder::new(OutputCodec::Gzip(6), Vec::new()).unwrap();
        gz.write_all(&input).unwrap();
        let gz = gz.finish().unwrap();
        let cut = &gz[..gz.len() / 2];
        assert!(
            rewrite_layer(cut, Vec::new(), &LayerPlan::default(), OutputCodec::Gzip(6), &Limits::default()).is_err()
        );
        let mut corrupt = input.clone();
        corrupt[600] ^= 0xff; // inside the second header
        assert!(rewrite_layer(
            &corrupt[..],
            Vec::new(),
            &LayerPlan::default(),
            OutputCodec::Gzip(6),
            &Limits::default()
        )
        .is_err());
    }
}
