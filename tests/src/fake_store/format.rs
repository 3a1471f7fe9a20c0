//! Wire details of the fake store: dates, XML, percent-decoding, digests,
//! `Range` headers.

use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// (year, month, day, hour, minute, second, weekday 0 = Sunday) in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, usize) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7) as usize;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    (year, month, day, h as u32, m as u32, s as u32, weekday)
}

/// `Tue, 15 Nov 1994 08:12:31 GMT` (the `Last-Modified` header).
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = civil(t);
    format!(
        "{}, {d:02} {} {y} {h:02}:{mi:02}:{s:02} GMT",
        DAYS[wd],
        MONTHS[mo as usize - 1]
    )
}

/// `2020-05-18T05:45:54.000Z` (`LastModified` in a listing).
pub fn iso_date(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = civil(t);
    format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000Z")
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// `%XX` decoded; `+` stays `+` (what the object stores do in paths and in
/// the signed query values the clients send).
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next().unwrap_or_default() {
        "json" => "application/json",
        "txt" | "py" => "text/plain",
        "gz" | "tgz" => "application/gzip",
        "zip" | "mar" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// CRC-64/XZ (ECMA-182 polynomial, reflected, init and xorout all ones):
/// what OSS and COS report as `x-oss-hash-crc64ecma` / `x-cos-hash-crc64ecma`.
pub struct Crc64 {
    table: [u64; 256],
    crc: u64,
}

impl Crc64 {
    pub fn new() -> Crc64 {
        let mut table = [0u64; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0xC96C_5795_D787_0F42
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        Crc64 { table, crc: !0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.crc = self.table[((self.crc ^ u64::from(b)) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    pub fn finish(&self) -> u64 {
        !self.crc
    }
}

/// (MD5 hex, CRC-64/XZ) of a file.
pub fn digests(path: &Path) -> std::io::Result<(String, u64)> {
    use md5::Digest as _;
    let mut file = std::fs::File::open(path)?;
    let (mut md5, mut crc) = (md5::Md5::new(), Crc64::new());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        crc.update(&buf[..n]);
    }
    let hex = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, crc.finish()))
}

/// A `Range` header against an object of `len` bytes: `Ok(None)` for the
/// whole object (no header, or a form the fake ignores, e.g. several
/// ranges), `Ok(Some((first, last)))` inclusive, `Err(())` unsatisfiable.
#[allow(clippy::result_unit_err)]
pub fn parse_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        // bytes=-n: the last n bytes.
        _ if a.is_empty() => match b.parse::<u64>() {
            Ok(0) | Err(_) => return Err(()),
            Ok(n) => (len.saturating_sub(n), len.checked_sub(1).ok_or(())?),
        },
        (Ok(first), Ok(last)) if first <= last => (first, last.min(len.saturating_sub(1))),
        (Ok(first), Err(_)) if b.is_empty() => (first, len.saturating_sub(1)),
        _ => return Ok(None),
    };
    if range.0 >= len {
        return Err(());
    }
    Ok(Some(range))
}
