//! A read-only reader of one SQLite table, for `rpmdb.sqlite`'s `Packages(hnum INTEGER PRIMARY
//! KEY, blob BLOB)`: the file header (page size, reserved bytes), `sqlite_master` on page 1 to
//! find the table's root page, interior and leaf table b-tree pages, varints, record headers,
//! overflow chains.
//!
//! Hand-written rather than `rusqlite`: the file comes from an untrusted image, already in
//! memory (the scan keeps it), and SQLite's C library would need it on disk, trusts its
//! structure far more than a hardening tool should, and cannot be fuzzed with the rest of the
//! parsers. This reader visits each page at most once (b-tree pages and overflow pages alike:
//! a page reached twice is a cycle, an error), so its work is bounded by the file's size, and
//! each value it returns is bounded by the file's size too. So is the sum of what it returns:
//! in a real file every payload byte has a place of its own, so payloads adding up to more than
//! the file (cell pointers of a page all aimed at one big cell) are an error, as is a cell
//! pointer repeated on a page. A write-ahead log (`-wal`) is not
//! read: the main file is what rpm last checkpointed.
//!
//! Owns: the SQLite file format, read-only. Must not: know what the blobs mean.

const MAGIC: &[u8] = b"SQLite format 3\0";
/// b-tree depth beyond any real file (a 64 MiB file of 512-byte pages is ~4 deep).
const MAX_DEPTH: usize = 64;

struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    usable: usize,
    pages: usize,
    seen: Vec<bool>,
    /// Payload bytes produced so far: never more than the file holds.
    produced: usize,
}

/// A varint at `at`: the value and its length (1..=9 bytes).
fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let c = *b.get(at + i)?;
        if i == 8 {
            return Some(((v << 8) | c as u64, 9));
        }
        v = (v << 7) | (c & 0x7f) as u64;
        if c & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 2).map(|x| u16::from_be_bytes([x[0], x[1]]) as usize)
}
fn be32(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]) as usize)
}

impl<'a> Db<'a> {
    fn open(data: &'a [u8]) -> Result<Db<'a>, String> {
        if !data.starts_with(MAGIC) || data.len() < 100 {
            return Err("not an SQLite 3 database (no `SQLite format 3` header)".into());
        }
        let page_size = match be16(data, 16).unwrap_or(0) {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() && n <= 32768 => n,
            n => return Err(format!("SQLite page size {n} is not a power of two from 512 to 65536")),
        };
        let usable = page_size - data[20] as usize;
        if usable < 480 {
            return Err(format!("SQLite usable page size {usable} is below the format's 480"));
        }
        if data[56..60] != [0, 0, 0, 1] && data[56..60] != [0, 0, 0, 0] {
            return Err("SQLite text encoding is not UTF-8".into());
        }
        // Pages the file holds (the header's count may be stale; the bytes are what there is).
        let pages = data.len() / page_size;
        Ok(Db { data, page_size, usable, pages, seen: vec![false; pages + 1], produced: 0 })
    }

    /// Page `n` (1-based), marked as visited: a second visit is a cycle.
    fn page(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n == 0 || n > self.pages {
            return Err(format!("SQLite page {n} is outside the file's {} pages", self.pages));
        }
        if std::mem::replace(&mut self.seen[n], true) {
            return Err(format!("SQLite page {n} is reached twice (a cycle)"));
        }
        let data: &'a [u8] = self.data;
        Ok(&data[(n - 1) * self.page_size..n * self.page_size])
    }

    /// Every row (rowid, payload) of the table b-tree rooted at `root`, in order.
    fn table(&mut self, root: usize, out: &mut Vec<(i64, Vec<u8>)>) -> Result<(), String> {
        self.walk(root, 0, out)
    }

    fn walk(&mut self, n: usize, depth: usize, out: &mut Vec<(i64, Vec<u8>)>) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("SQLite b-tree deeper than {MAX_DEPTH} at page {n}"));
        }
        let page = self.page(n)?;
        let h = if n == 1 { 100 } else { 0 };
        let bad = |what: &str| format!("SQLite page {n}: {what}");
        let kind = page[h];
        let cells = be16(page, h + 3).ok_or_else(|| bad("header cut short"))?;
        let hdr = match kind {
            0x0d => 8,
            0x05 => 12,
            k => return Err(bad(&format!("type {k:#x} is not a table b-tree page"))),
        };
        if h + hdr + 2 * cells > self.usable {
            return Err(bad(&format!("{cells} cells do not fit")));
        }
        let mut offsets = std::collections::HashSet::new();
        for i in 0..cells {
            let at = be16(page, h + hdr + 2 * i).ok_or_else(|| bad("cell pointer cut short"))?;
            if at >= self.usable {
                return Err(bad(&format!("cell {i} at offset {at}, beyond the page")));
            }
            if !offsets.insert(at) {
                return Err(bad(&format!("cell {i} at offset {at}, the offset of an earlier cell")));
            }
            if kind == 0x05 {
                let child = be32(page, at).ok_or_else(|| bad("child pointer cut short"))?;
                self.walk(child, depth + 1, out)?;
            } else {
                let (len, a) = varint(page, at).ok_or_else(|| bad("cell cut short"))?;
                let (rowid, b) = varint(page, at + a).ok_or_else(|| bad("cell cut short"))?;
                let payload = self.payload(n, page, at + a + b, len)?;
                out.push((rowid as i64, payload));
            }
        }
        if kind == 0x05 {
            let right = be32(page, h + 8).ok_or_else(|| bad("right pointer cut short"))?;
            self.walk(right, depth + 1, out)?;
        }
        Ok(())
    }

    /// A leaf cell's payload of `len` bytes starting at `at`, with its overflow pages.
    fn payload(&mut self, n: usize, page: &[u8], at: usize, len: u64) -> Result<Vec<u8>, String> {
        let u = self.usable;
        if len > self.data.len() as u64 {
            return Err(format!("SQLite page {n}: a {len}-byte payload in a {}-byte file", self.data.len()));
        }
        let len = len as usize;
        self.produced = self.produced.saturating_add(len);
        if self.produced > self.data.len() {
            return Err(format!(
                "SQLite page {n}: payloads add up to more than the file's {} bytes (cells sharing bytes)",
                self.data.len()
            ));
        }
        let local = local_size(u, len);
        let inline = page.get(at..at + local).filter(|_| at + local <= u);
        let inline = inline.ok_or_else(|| format!("SQLite page {n}: a payload runs past the page"))?;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(inline);
        let mut next = if local < len {
            be32(page, at + local).ok_or_else(|| format!("SQLite page {n}: overflow pointer cut short"))?
        } else {
            0
        };
        while out.len() < len {
            let o = self.page(next).map_err(|e| format!("{e} (overflow of a cell on page {n})"))?;
            next = be32(o, 0).unwrap_or(0);
            let take = (len - out.len()).min(u - 4);
            out.extend_from_slice(&o[4..4 + take]);
        }
        Ok(out)
    }
}

/// How many of a table leaf cell's `len` payload bytes sit on the page (usable size `u`); the
/// rest is on overflow pages (the file format's rule for table b-tree leaves).
fn local_size(u: usize, len: usize) -> usize {
    let x = u - 35;
    if len <= x {
        return len;
    }
    let m = ((u - 12) * 32 / 255) - 23;
    let k = m + (len - m) % (u - 4);
    if k <= x {
        k
    } else {
        m
    }
}

/// One column of a record: an integer, or bytes (text or blob), or NULL.
#[derive(Debug, PartialEq, Eq)]
enum Value<'a> {
    Null,
    Int(i64),
    Bytes(&'a [u8]),
}

/// The columns of a record (`rec` is a row's payload).
fn record(rec: &[u8]) -> Result<Vec<Value<'_>>, String> {
    let (hlen, mut a) = varint(rec, 0).ok_or("record header cut short")?;
    let hlen = hlen as usize;
    if hlen > rec.len() {
        return Err(format!("record header of {hlen} bytes in a {}-byte record", rec.len()));
    }
    let mut body = hlen;
    let mut out = Vec::new();
    while a < hlen {
        let (t, l) = varint(rec, a).ok_or("record header cut short")?;
        a += l;
        let size = match t {
            0 | 8 | 9 => 0,
            1..=4 => t as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return Err(format!("record column type {t} is reserved")),
            _ => ((t - 12) / 2) as usize,
        };
        let v = rec.get(body..body.saturating_add(size)).ok_or("record column runs past the record")?;
        body += size;
        out.push(match t {
            0 => Value::Null,
            8 => Value::Int(0),
            9 => Value::Int(1),
            1..=6 => {
                let mut x: i64 = if v[0] & 0x80 != 0 { -1 } else { 0 };
                for &b in v {
                    x = (x << 8) | b as i64;
                }
                Value::Int(x)
            }
            _ => Value::Bytes(v),
        });
    }
    Ok(out)
}

/// The `blob` column of every row of the `Packages` table, in rowid order.
pub fn packages(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut db = Db::open(data)?;
    let mut master = Vec::new();
    db.table(1, &mut master)?;
    let mut root = None;
    for (_, rec) in &master {
        let cols = record(rec).map_err(|e| format!("sqlite_master: {e}"))?;
        if let [Value::Bytes(b"table"), Value::Bytes(name), _, Value::Int(r), ..] = cols.as_slice() {
            if name.eq_ignore_ascii_case(b"Packages") {
                root = Some(*r);
            }
        }
    }
    let root = root.ok_or("no `Packages` table")?;
    let root = usize::try_from(root).map_err(|_| format!("`Packages` has root page {root}"))?;
    let mut rows = Vec::new();
    db.table(root, &mut rows)?;
    let mut out = Vec::with_capacity(rows.len());
    for (rowid, rec) in rows {
        let cols = record(&rec).map_err(|e| format!("Packages row {rowid}: {e}"))?;
        match cols.get(1) {
            Some(Value::Bytes(b)) => out.push(b.to_vec()),
            _ => return Err(format!("Packages row {rowid}: no blob in its second column")),
        }
    }
    Ok(out)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        // Small values only (tests): up to 2^28.
        let mut bytes = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            bytes.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        bytes.reverse();
        out.extend(bytes);
    }

    fn rec(cols: &[Option<&[u8]>]) -> Vec<u8> {
        let mut hdr = Vec::new();
        let mut body = Vec::new();
        for c in cols {
            match c {
                None => put_varint(&mut hdr, 0),
                Some(b) => {
                    put_varint(&mut hdr, 12 + 2 * b.len() as u64);
                    body.extend_from_slice(b);
                }
            }
        }
        let mut out = Vec::new();
        put_varint(&mut out, hdr.len() as u64 + 1);
        out.extend(hdr);
        out.extend(body);
        out
    }

    const PS: usize = 4096;

    /// A 4096-byte-page database: page 1 `sqlite_master` naming `Packages` at page 2, page 2 a
    /// leaf holding `blobs` (small ones inline; a big one spills to overflow pages 3..).
    pub fn build(blobs: &[Vec<u8>]) -> Vec<u8> {
        let ps = PS;
        let mut page1 = vec![0u8; ps];
        page1[..16].copy_from_slice(MAGIC);
        page1[16..18].copy_from_slice(&(ps as u16).to_be_bytes());
        page1[56..60].copy_from_slice(&[0, 0, 0, 1]);
        // sqlite_master record: type, name, tbl_name, rootpage (int 2), sql (NULL).
        let m = {
            let mut hdr = Vec::new();
            let mut body = Vec::new();
            for b in [&b"table"[..], b"Packages", b"Packages"] {
                put_varint(&mut hdr, 12 + 2 * b.len() as u64);
                body.extend_from_slice(b);
            }
            put_varint(&mut hdr, 1);
            body.push(2);
            put_varint(&mut hdr, 0);
            let mut out = vec![hdr.len() as u8 + 1];
            out.extend(hdr);
            out.extend(body);
            out
        };
        let mut cell = Vec::new();
        put_varint(&mut cell, m.len() as u64);
        put_varint(&mut cell, 1);
        cell.extend(&m);
        let at = ps - cell.len();
        page1[at..].copy_from_slice(&cell);
        page1[100] = 0x0d;
        page1[103..105].copy_from_slice(&1u16.to_be_bytes());
        page1[105..107].copy_from_slice(&(at as u16).to_be_bytes());
        page1[108..110].copy_from_slice(&(at as u16).to_be_bytes());

        let mut pages = vec![page1, vec![0u8; ps]];
        let mut end = ps;
        let u = ps;
        for (i, b) in blobs.iter().enumerate() {
            let r = rec(&[None, Some(b)]);
            let len = r.len();
            let local = local_size(u, len);
            let mut cell = Vec::new();
            put_varint(&mut cell, len as u64);
            put_varint(&mut cell, i as u64 + 1);
            cell.extend_from_slice(&r[..local]);
            if local < len {
                let first = pages.len() + 1;
                cell.extend_from_slice(&(first as u32).to_be_bytes());
                let chunks: Vec<&[u8]> = r[local..].chunks(u - 4).collect();
                for (ci, c) in chunks.iter().enumerate() {
                    let mut p = vec![0u8; ps];
                    let next = if ci + 1 < chunks.len() { pages.len() + 2 } else { 0 };
                    p[..4].copy_from_slice(&(next as u32).to_be_bytes());
                    p[4..4 + c.len()].copy_from_slice(c);
                    pages.push(p);
                }
            }
            end -= cell.len();
            pages[1][end..end + cell.len()].copy_from_slice(&cell);
            pages[1][8 + 2 * i..10 + 2 * i].copy_from_slice(&(end as u16).to_be_bytes());
        }
        pages[1][0] = 0x0d;
        pages[1][3..5].copy_from_slice(&(blobs.len() as u16).to_be_bytes());
        pages[1][5..7].copy_from_slice(&(end as u16).to_be_bytes());
        pages.concat()
    }

    #[test]
    fn reads_rows_inline_and_through_overflow_pages() {
        let blobs = vec![b"small".to_vec(), (0..20000u32).map(|i| i as u8).collect::<Vec<u8>>(), vec![7u8; 50]];
        let db = build(&blobs);
        assert_eq!(packages(&db).unwrap(), blobs);
    }

    #[test]
    fn varints_follow_the_format() {
        assert_eq!(varint(&[0x7f], 0), Some((0x7f, 1)));
        assert_eq!(varint(&[0x81, 0x00], 0), Some((0x80, 2)));
        assert_eq!(varint(&[0xff; 9], 0), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81], 0), None);
    }

    #[test]
    fn hostile_files_are_errors_not_panics() {
        let db = build(&[b"a".to_vec(), vec![9u8; 12000]]);
        for n in 0..db.len() {
            let _ = packages(&db[..n]);
        }
        for i in (0..db.len()).step_by(3) {
            for v in [0u8, 1, 2, 3, 0x05, 0x0d, 0x7f, 0xff] {
                let mut b = db.clone();
                b[i] = v;
                let _ = packages(&b);
            }
        }
        assert!(packages(b"hello").unwrap_err().contains("not an SQLite"));
        // The first overflow page (3) pointing back at itself.
        let mut b = db.clone();
        b[2 * PS..2 * PS + 4].copy_from_slice(&3u32.to_be_bytes());
        let e = packages(&b).unwrap_err();
        assert!(e.contains("reached twice") || e.contains("outside"), "{e}");
        // An interior page pointing at itself.
        let mut b = db.clone();
        b[PS] = 0x05;
        b[PS + 3..PS + 5].copy_from_slice(&0u16.to_be_bytes());
        b[PS + 8..PS + 12].copy_from_slice(&2u32.to_be_bytes());
        assert!(packages(&b).unwrap_err().contains("reached twice"));
        // Every cell pointer of a leaf aimed at one cell: refused, not copied once per pointer.
        let mut b = db.clone();
        let cells = be16(&b, PS + 3).unwrap();
        let first = be16(&b, PS + 8).unwrap();
        assert!(cells >= 2, "{cells}");
        b[PS + 10..PS + 12].copy_from_slice(&(first as u16).to_be_bytes());
        assert!(packages(&b).unwrap_err().contains("the offset of an earlier cell"));
        // No Packages table.
        let mut b = db.clone();
        let at = b.windows(8).position(|w| w == b"Packages").unwrap();
        b[at] = b'X';
        assert!(packages(&b).unwrap_err().contains("no `Packages` table"));
    }
}
