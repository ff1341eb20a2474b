//! A read-only reader of a Berkeley DB hash database, for rpm's `Packages` (RHEL/CentOS 5-8,
//! UBI 8, Amazon Linux 2): the metadata page (magic, byte order, page size, last page), then
//! every hash page (`P_HASH`, or `P_HASH_UNSORTED` of old releases) in file order, each holding
//! key/value item pairs; a value is on the page (`H_KEYDATA`) or on a chain of overflow pages
//! (`H_OFFPAGE` → `P_OVERFLOW`). The order of records is the file's, not rpm's; rpm's key 0
//! (its next instance number, not a header) is skipped.
//!
//! Bounded like the SQLite reader: each overflow page is followed at most once (a second visit is
//! a cycle, an error) and a value never grows past the length its item declares or the file's
//! size. Transactional environments (`__db.*`, logs) are not read: the file is the truth rpm left.
//!
//! Owns: the Berkeley DB hash format, read-only. Must not: know what the values mean.

const HASH_MAGIC: u32 = 0x061561;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
/// Every page's header: lsn, pgno, prev, next, entries, hf_offset, level, type.
const HEADER: usize = 26;

struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    big_endian: bool,
}

impl<'a> Db<'a> {
    fn u16(&self, b: &[u8], at: usize) -> usize {
        let x = [b[at], b[at + 1]];
        (if self.big_endian { u16::from_be_bytes(x) } else { u16::from_le_bytes(x) }) as usize
    }
    fn u32(&self, b: &[u8], at: usize) -> usize {
        let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        (if self.big_endian { u32::from_be_bytes(x) } else { u32::from_le_bytes(x) }) as usize
    }
    fn page(&self, n: usize) -> Option<&'a [u8]> {
        let data: &'a [u8] = self.data;
        data.get(n.checked_mul(self.page_size)?..(n + 1).checked_mul(self.page_size)?)
    }

    /// The `len` bytes of an off-page value starting at page `n`.
    fn overflow(&self, seen: &mut [bool], mut n: usize, len: usize) -> Result<Vec<u8>, String> {
        if len > self.data.len() {
            return Err(format!("an off-page value of {len} bytes in a {}-byte file", self.data.len()));
        }
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let p = self.page(n).ok_or_else(|| format!("overflow page {n} is outside the file"))?;
            if std::mem::replace(&mut seen[n], true) {
                return Err(format!("overflow page {n} is reached twice (a cycle)"));
            }
            if p[25] != P_OVERFLOW {
                return Err(format!("page {n} has type {}, not an overflow page", p[25]));
            }
            let on_page = self.u16(p, 22);
            let chunk =
                p.get(HEADER..HEADER + on_page).ok_or_else(|| format!("overflow page {n} claims {on_page} bytes"))?;
            out.extend_from_slice(&chunk[..chunk.len().min(len - out.len())]);
            n = self.u32(p, 16);
            if n == 0 {
                break;
            }
        }
        if out.len() != len {
            return Err(format!("an off-page value ends after {} of its {len} bytes", out.len()));
        }
        Ok(out)
    }
}

/// The value of every key but rpm's key 0, in file order.
pub fn values(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if data.len() < 512 {
        return Err("not a Berkeley DB file (shorter than one page)".into());
    }
    let magic = [data[12], data[13], data[14], data[15]];
    let big_endian = if u32::from_le_bytes(magic) == HASH_MAGIC {
        false
    } else if u32::from_be_bytes(magic) == HASH_MAGIC {
        true
    } else {
        return Err("not a Berkeley DB hash database (magic number)".into());
    };
    let mut db = Db { data, page_size: 0, big_endian };
    if data[25] != P_HASHMETA {
        return Err(format!("Berkeley DB metadata page has type {}, not hash", data[25]));
    }
    if data[24] != 0 {
        return Err("Berkeley DB file is encrypted".into());
    }
    db.page_size = db.u32(data, 20);
    if !(512..=65536).contains(&db.page_size) || !db.page_size.is_power_of_two() {
        return Err(format!("Berkeley DB page size {} is not a power of two from 512 to 65536", db.page_size));
    }
    let pages = data.len() / db.page_size;
    let last = db.u32(data, 32);
    if last >= pages {
        return Err(format!("Berkeley DB says its last page is {last}, but the file holds {pages}"));
    }
    let db = db;
    let mut seen = vec![false; pages];
    let mut out = Vec::new();
    for n in 1..=last {
        let Some(p) = db.page(n) else { break };
        if p[25] != P_HASH && p[25] != P_HASH_UNSORTED {
            continue;
        }
        let entries = db.u16(p, 20);
        if !entries.is_multiple_of(2) || HEADER + 2 * entries > p.len() {
            return Err(format!("hash page {n} claims {entries} items"));
        }
        let at = |i: usize| db.u16(p, HEADER + 2 * i);
        // An item runs from its offset to the previous item's (items fill the page from its end).
        let item = |i: usize| -> Result<&[u8], String> {
            let (start, end) = (at(i), if i == 0 { p.len() } else { at(i - 1) });
            p.get(start..end)
                .filter(|b| !b.is_empty())
                .ok_or_else(|| format!("hash page {n}: item {i} is out of place"))
        };
        for pair in 0..entries / 2 {
            let (key, val) = (item(2 * pair)?, item(2 * pair + 1)?);
            if key[0] == H_KEYDATA && key[1..].iter().all(|&b| b == 0) {
                continue;
            }
            match val[0] {
                H_KEYDATA => out.push(val[1..].to_vec()),
                H_OFFPAGE if val.len() >= 12 => {
                    let (pgno, len) = (db.u32(val, 4), db.u32(val, 8));
                    out.push(db.overflow(&mut seen, pgno, len).map_err(|e| format!("hash page {n}: {e}"))?);
                }
                t => return Err(format!("hash page {n}: value {pair} has item type {t} (duplicates are not rpm's)")),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A little-endian hash database of 512-byte pages: meta, one hash page with key/value
    /// pairs (values over 100 bytes go to overflow pages), and rpm's key 0.
    pub fn build(values: &[Vec<u8>]) -> Vec<u8> {
        let ps = 512;
        let mut pages: Vec<Vec<u8>> = vec![vec![0u8; ps], vec![0u8; ps]];
        let mut items: Vec<Vec<u8>> = vec![[&[H_KEYDATA][..], &[0; 4]].concat(), vec![H_KEYDATA, 9, 0, 0, 0]];
        for (i, v) in values.iter().enumerate() {
            items.push([&[H_KEYDATA][..], &(i as u32 + 1).to_le_bytes()].concat());
            if v.len() <= 100 {
                items.push([&[H_KEYDATA][..], v].concat());
            } else {
                let first = pages.len();
                let chunks: Vec<&[u8]> = v.chunks(ps - HEADER).collect();
                for (ci, c) in chunks.iter().enumerate() {
                    let mut p = vec![0u8; ps];
                    let next = if ci + 1 < chunks.len() { pages.len() + 1 } else { 0 };
                    p[16..20].copy_from_slice(&(next as u32).to_le_bytes());
                    p[22..24].copy_from_slice(&(c.len() as u16).to_le_bytes());
                    p[25] = P_OVERFLOW;
                    p[HEADER..HEADER + c.len()].copy_from_slice(c);
                    pages.push(p);
                }
                let mut it = vec![H_OFFPAGE, 0, 0, 0];
                it.extend_from_slice(&(first as u32).to_le_bytes());
                it.extend_from_slice(&(v.len() as u32).to_le_bytes());
                items.push(it);
            }
        }
        let mut end = ps;
        let h = &mut pages[1];
        for (i, it) in items.iter().enumerate() {
            end -= it.len();
            h[end..end + it.len()].copy_from_slice(it);
            h[HEADER + 2 * i..HEADER + 2 * i + 2].copy_from_slice(&(end as u16).to_le_bytes());
        }
        h[20..22].copy_from_slice(&(items.len() as u16).to_le_bytes());
        h[25] = P_HASH;
        let last = pages.len() - 1;
        let m = &mut pages[0];
        m[12..16].copy_from_slice(&HASH_MAGIC.to_le_bytes());
        m[20..24].copy_from_slice(&(ps as u32).to_le_bytes());
        m[25] = P_HASHMETA;
        m[32..36].copy_from_slice(&(last as u32).to_le_bytes());
        pages.concat()
    }

    #[test]
    fn reads_values_on_page_and_off_page_skipping_key_zero() {
        let vals = vec![b"short".to_vec(), (0..2000u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>()];
        assert_eq!(values(&build(&vals)).unwrap(), vals);
    }

    #[test]
    fn hostile_files_are_errors_not_panics() {
        let db = build(&[b"a".to_vec(), vec![3u8; 1500]]);
        for n in (0..db.len()).step_by(7) {
            let _ = values(&db[..n]);
        }
        for i in 0..db.len() {
            for v in [0u8, 1, 3, 7, 13, 0xff] {
                let mut b = db.clone();
                b[i] = v;
                let _ = values(&b);
            }
        }
        assert!(values(&[0u8; 100]).unwrap_err().contains("shorter than one page"));
        assert!(values(&[0u8; 4096]).unwrap_err().contains("magic"));
        // The last overflow page pointing back at the first: a cycle, or a length mismatch.
        let mut b = db.clone();
        let pages = b.len() / 512;
        b[(pages - 1) * 512 + 16..(pages - 1) * 512 + 20].copy_from_slice(&2u32.to_le_bytes());
        b[(pages - 1) * 512 + 22..(pages - 1) * 512 + 24].copy_from_slice(&1u16.to_le_bytes());
        let e = values(&b).unwrap_err();
        assert!(e.contains("reached twice"), "{e}");
        // A declared length far beyond the file.
        let mut b = db.clone();
        let at = b.windows(4).position(|w| w == 1500u32.to_le_bytes()).unwrap();
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(values(&b).unwrap_err().contains("bytes in a"));
    }
}
