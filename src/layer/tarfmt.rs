//! Tar header fields, PAX records and GNU sparse maps, read exactly as Go's `archive/tar` (Go
//! 1.19, Debian bookworm's `golang-go`, the reader containerd, moby and containers/storage
//! unpack layers with) reads them: the same numbers, names and errors, so that what
//! [`super::tar`] frames is what the runtime unpacks. Each function names the Go function it
//! follows (`reader.go`, `strconv.go`, `format.go`, `common.go`).
//!
//! Owns: field decoding. Must not: frame entries (that is [`super::tar`]) or decide policy.

use std::io;

/// An error about the archive's bytes (exit 1, the layer named by the caller).
pub fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Go's `maxSpecialFileSize`: the largest PAX or GNU long-name block it reads.
pub const MAX_SPECIAL: u64 = 1 << 20;

/// The header formats Go tells apart by magic (`getFormat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    V7,
    /// `ustar\0` magic: USTAR or PAX.
    Ustar,
    /// `ustar\0` magic and `tar\0` trailer.
    Star,
    /// `ustar ` magic and ` \0` version.
    Gnu,
}

/// One header block as Go's `readHeader` decodes it (before PAX and GNU long names apply).
#[derive(Clone, Debug)]
pub struct Fields {
    pub format: Format,
    pub typeflag: u8,
    pub name: Vec<u8>,
    pub linkname: Vec<u8>,
    pub size: i64,
    pub mode: i64,
    pub uid: i64,
    pub gid: i64,
}

/// `parser.parseString`: up to the first NUL.
pub fn c_str(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

/// `parser.parseNumeric`: base-256 when the top bit is set (negative when the next one is),
/// else octal. None where Go sets `ErrHeader`.
pub fn numeric(b: &[u8]) -> Option<i64> {
    if b.first().is_some_and(|&c| c & 0x80 != 0) {
        let inv = if b[0] & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in b.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return None;
            }
            x = x << 8 | u64::from(c);
        }
        if x >> 63 > 0 {
            return None;
        }
        return Some(if inv == 0xff { !(x as i64) } else { x as i64 });
    }
    octal(b)
}

/// `parser.parseOctal`: spaces and NULs trimmed at both ends, then up to a NUL, octal digits.
fn octal(b: &[u8]) -> Option<i64> {
    let start = b.iter().position(|&c| c != b' ' && c != 0).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b' ' && c != 0).map_or(start, |i| i + 1);
    let t = c_str(&b[start..end.max(start)]);
    if t.is_empty() {
        return Some(0);
    }
    let mut x: u64 = 0;
    for &c in t {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        x = x.checked_mul(8)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(x as i64)
}

/// `strconv.ParseInt(s, 10, 64)`: an optional sign and decimal digits, no overflow.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut x: i128 = 0;
    for &c in digits {
        x = x * 10 + i128::from(c - b'0');
        if x > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let x = if neg { -x } else { x };
    i64::try_from(x).ok()
}

/// `parsePAXTime`: seconds (a decimal integer), optionally `.` and digits.
fn pax_time_ok(v: &[u8]) -> bool {
    let (secs, frac) = match v.iter().position(|&c| c == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    parse_int(secs).is_some() && frac.iter().all(u8::is_ascii_digit)
}

fn ascii_only(b: &[u8]) -> bool {
    b.iter().all(|&c| c < 0x80)
}

/// `block.getFormat` and `Reader.readHeader`: the header's fields, or the error Go gives.
pub fn header(block: &[u8; 512]) -> io::Result<Fields> {
    let err = |what: &str| bad(format!("bad tar header: {what}"));
    // The checksum (over unsigned or signed bytes, the field counted as spaces).
    let sum = octal(&block[148..156]).ok_or_else(|| err("checksum field is not octal"))?;
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &c) in block.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += i64::from(c);
        signed += i64::from(c as i8);
    }
    if sum != unsigned && sum != signed {
        return Err(bad("tar header checksum mismatch (corrupt layer)"));
    }
    let (magic, version, trailer) = (&block[257..263], &block[263..265], &block[508..512]);
    let format = if magic == b"ustar\0" && trailer == b"tar\0" {
        Format::Star
    } else if magic == b"ustar\0" {
        Format::Ustar
    } else if magic == b"ustar " && version == b" \0" {
        Format::Gnu
    } else {
        Format::V7
    };
    let num = |r: std::ops::Range<usize>, what: &str| numeric(&block[r]).ok_or_else(|| err(what));
    let mut f = Fields {
        format,
        typeflag: block[156],
        name: c_str(&block[0..100]).to_vec(),
        linkname: c_str(&block[157..257]).to_vec(),
        size: num(124..136, "size field")?,
        mode: num(100..108, "mode field")?,
        uid: num(108..116, "uid field")?,
        gid: num(116..124, "gid field")?,
    };
    num(136..148, "mtime field")?;
    if format == Format::V7 {
        return Ok(f);
    }
    num(329..337, "devmajor field")?;
    num(337..345, "devminor field")?;
    let prefix: &[u8] = match format {
        Format::Ustar => c_str(&block[345..500]),
        Format::Star => {
            num(476..488, "atime field")?;
            num(488..500, "ctime field")?;
            c_str(&block[345..476])
        }
        _ => {
            // Go reads GNU atime/ctime leniently: unparsable ones mean a pre-Go-1.8 writer that
            // put a USTAR prefix there, taken when it is ASCII.
            let bad_time = |r: std::ops::Range<usize>| block[r.start] != 0 && numeric(&block[r]).is_none();
            let p = c_str(&block[345..500]);
            if (bad_time(345..357) || bad_time(357..369)) && ascii_only(p) {
                p
            } else {
                &[]
            }
        }
    };
    if !prefix.is_empty() {
        let mut name = prefix.to_vec();
        name.push(b'/');
        name.extend_from_slice(&f.name);
        f.name = name;
    }
    Ok(f)
}

/// `parsePAX` and `parsePAXRecord`: the records of a PAX block in order, each checked as Go
/// checks it (`validPAXRecord`: no empty key; no NUL in a key, nor in a `path`, `linkpath`,
/// `uname` or `gname` value). GNU sparse 0.0 `offset`/`numbytes` pairs must alternate and hold
/// no comma. Any other form is an error, as in Go: trailing NULs inside the declared size too.
pub fn pax_records(data: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let err = |what: &str| bad(format!("bad PAX record: {what}"));
    let mut out = Vec::new();
    let mut rest = data;
    let mut sparse_pairs = 0usize;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ').ok_or_else(|| err("no length"))?;
        let n = parse_int(&rest[..sp]).ok_or_else(|| err("length is not a number"))?;
        if n < 5 || n > rest.len() as i64 || n as usize <= sp + 1 {
            return Err(err("length does not fit the record"));
        }
        let n = n as usize;
        if rest[n - 1] != b'\n' {
            return Err(err("record does not end in a newline"));
        }
        let rec = &rest[sp + 1..n - 1];
        let eq = rec.iter().position(|&b| b == b'=').ok_or_else(|| err("no `=`"))?;
        let (k, v) = (&rec[..eq], &rec[eq + 1..]);
        if k.is_empty() {
            return Err(err("empty key"));
        }
        let named = matches!(k, b"path" | b"linkpath" | b"uname" | b"gname");
        if named && v.contains(&0) {
            return Err(err(&format!("{} value contains a NUL byte", String::from_utf8_lossy(k))));
        }
        if !named && k.contains(&0) {
            return Err(err("key contains a NUL byte"));
        }
        match k {
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                let want: &[u8] =
                    if sparse_pairs.is_multiple_of(2) { b"GNU.sparse.offset" } else { b"GNU.sparse.numbytes" };
                if k != want || v.contains(&b',') {
                    return Err(err("GNU sparse 0.0 offset/numbytes records out of order"));
                }
                sparse_pairs += 1;
            }
            _ => {}
        }
        out.push((String::from_utf8_lossy(k).into_owned(), v.to_vec()));
        rest = &rest[n..];
    }
    Ok(out)
}

/// A record's value as Go's map holds it: the last record of that key. `GNU.sparse.map` is the
/// 0.0 `offset`/`numbytes` pairs joined when there are any (Go converts 0.0 to 0.1 so).
pub fn pax_get<'a>(pax: &'a [(String, Vec<u8>)], key: &str) -> Option<std::borrow::Cow<'a, [u8]>> {
    if key == "GNU.sparse.map" {
        let pairs: Vec<&[u8]> = pax
            .iter()
            .filter(|(k, _)| k == "GNU.sparse.offset" || k == "GNU.sparse.numbytes")
            .map(|(_, v)| &v[..])
            .collect();
        if !pairs.is_empty() {
            return Some(pairs.join(&b","[..]).into());
        }
    }
    pax.iter().rev().find(|(k, _)| k == key).map(|(_, v)| (&v[..]).into())
}

/// A non-empty value (Go's `mergePAX` keeps the header's field for an empty one).
pub fn pax_set<'a>(pax: &'a [(String, Vec<u8>)], key: &str) -> Option<std::borrow::Cow<'a, [u8]>> {
    pax_get(pax, key).filter(|v| !v.is_empty())
}

/// `mergePAX`'s checks: the numeric records Go parses must parse.
pub fn check_merge(pax: &[(String, Vec<u8>)]) -> io::Result<()> {
    for key in ["uid", "gid", "size"] {
        if let Some(v) = pax_set(pax, key) {
            parse_int(&v)
                .ok_or_else(|| bad(format!("PAX {key} record `{}` is not a number", String::from_utf8_lossy(&v))))?;
        }
    }
    for key in ["atime", "mtime", "ctime"] {
        if let Some(v) = pax_set(pax, key) {
            if !pax_time_ok(&v) {
                return Err(bad(format!("PAX {key} record `{}` is not a time", String::from_utf8_lossy(&v))));
            }
        }
    }
    Ok(())
}

/// The PAX GNU sparse version Go recognises (`readGNUSparsePAXHeaders`): Some(true) for 1.0,
/// Some(false) for 0.0/0.1, None for a file Go does not read as sparse.
pub fn pax_sparse_version(pax: &[(String, Vec<u8>)]) -> Option<bool> {
    let get = |k: &str| pax_get(pax, k).map(|v| v.into_owned()).unwrap_or_default();
    let (major, minor) = (get("GNU.sparse.major"), get("GNU.sparse.minor"));
    match (&major[..], &minor[..]) {
        (b"0", b"0" | b"1") => Some(false),
        (b"1", b"0") => Some(true),
        _ if !major.is_empty() || !minor.is_empty() => None,
        _ if !get("GNU.sparse.map").is_empty() => Some(false),
        _ => None,
    }
}

/// `readGNUSparseMap0x1`: the map in the PAX records.
pub fn sparse_map_0x1(pax: &[(String, Vec<u8>)]) -> io::Result<Vec<(i64, i64)>> {
    let err = || bad("bad GNU sparse 0.x map");
    let n = pax_get(pax, "GNU.sparse.numblocks").and_then(|v| parse_int(&v)).ok_or_else(err)?;
    if n < 0 || n.checked_mul(2).is_none() {
        return Err(err());
    }
    let map = pax_get(pax, "GNU.sparse.map").map(|v| v.into_owned()).unwrap_or_default();
    let fields: Vec<&[u8]> = if map.is_empty() { Vec::new() } else { map.split(|&c| c == b',').collect() };
    if fields.len() as i64 != 2 * n {
        return Err(err());
    }
    fields.chunks(2).map(|p| Some((parse_int(p[0])?, parse_int(p[1])?))).collect::<Option<Vec<_>>>().ok_or_else(err)
}

/// `readGNUSparseMap1x0`'s parse of the map at the start of the data, `blocks` the whole
/// 512-byte blocks Go reads for it: None while more blocks are needed.
pub fn sparse_map_1x0(blocks: &[u8]) -> Option<io::Result<Vec<(i64, i64)>>> {
    let err = || bad("bad GNU sparse 1.0 map");
    let newlines = blocks.iter().filter(|&&c| c == b'\n').count() as u64;
    let mut tokens = blocks.split(|&c| c == b'\n');
    if newlines < 1 {
        return None;
    }
    let n = match tokens.next().and_then(parse_int) {
        Some(n) if n >= 0 && n.checked_mul(2).is_some() => n,
        _ => return Some(Err(err())),
    };
    if newlines < 1 + 2 * n as u64 {
        return None;
    }
    let mut map = Vec::new();
    for _ in 0..n {
        match (tokens.next().and_then(parse_int), tokens.next().and_then(parse_int)) {
            (Some(o), Some(l)) => map.push((o, l)),
            _ => return Some(Err(err())),
        }
    }
    Some(Ok(map))
}

/// `readOldGNUSparseMap`'s entries of one block: `count` 24-byte (offset, length) pairs from
/// `at`, up to the first whose offset starts with NUL.
pub fn old_gnu_entries(block: &[u8; 512], at: usize, count: usize, out: &mut Vec<(i64, i64)>) -> io::Result<()> {
    for i in 0..count {
        let e = &block[at + 24 * i..at + 24 * (i + 1)];
        if e[0] == 0 {
            break;
        }
        match (numeric(&e[..12]), numeric(&e[12..])) {
            (Some(o), Some(l)) => out.push((o, l)),
            _ => return Err(bad("bad old-GNU sparse map entry")),
        }
    }
    Ok(())
}

/// `validateSparseEntries` for a file of `size`, and that the data the map refers to is what
/// the archive stores (`physical` bytes): else Go's reader fails reading the file
/// (`errMissData`, `errUnrefData`).
pub fn check_sparse(map: &[(i64, i64)], size: i64, physical: u64) -> io::Result<()> {
    let err = |what: &str| bad(format!("bad GNU sparse map: {what}"));
    if size < 0 {
        return Err(err("negative size"));
    }
    let mut pre_end = 0i64;
    let mut data: u64 = 0;
    for &(o, l) in map {
        if o < 0 || l < 0 || o > i64::MAX - l || o + l > size || pre_end > o {
            return Err(err("fragments negative, past the end, out of order or overlapping"));
        }
        pre_end = o + l;
        data += l as u64;
    }
    if data != physical {
        return Err(err(&format!("it maps {data} bytes of data, the archive stores {physical}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_go_parses_them() {
        assert_eq!(numeric(b"0000644\0"), Some(0o644));
        assert_eq!(numeric(b"  644 \0"), Some(0o644));
        assert_eq!(numeric(b"\0\0\0\0"), Some(0));
        assert_eq!(numeric(b"0644\0xyz"), Some(0o644), "Go trims only the ends, then cuts at the NUL");
        assert_eq!(numeric(b"06 44"), None);
        assert_eq!(numeric(b"+644"), None);
        assert_eq!(numeric(&[0x80, 0, 0, 0, 0, 0, 0, 0x09, 0xed]), Some(0o4755));
        assert_eq!(numeric(&[0xff; 8]), Some(-1));
        assert_eq!(numeric(&[0x97, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(parse_int(b"+12"), Some(12));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"1_0"), None);
        assert_eq!(parse_int(b""), None);
        assert!(pax_time_ok(b"1.") && pax_time_ok(b"-1.5") && !pax_time_ok(b".5") && !pax_time_ok(b"1.5x"));
    }

    #[test]
    fn pax_records_as_go_checks_them() {
        assert!(pax_records(b"11 path=a\0\n").is_err(), "a NUL in a path value");
        assert!(pax_records(b"15 comment=a\0b\n").is_ok(), "a NUL in another value");
        assert!(pax_records(b"6 =ab\n").is_err(), "an empty key");
        assert!(pax_records(b"9 path=a\n\0\0\0").is_err(), "NULs within the declared size");
        assert!(pax_records(b"4 a=\n").is_err(), "a length under 5");
        let r = pax_records(b"9 path=a\n9 path=b\n").unwrap();
        assert_eq!(pax_get(&r, "path").as_deref(), Some(&b"b"[..]));
    }
}
