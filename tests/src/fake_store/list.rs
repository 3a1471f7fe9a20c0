//! The fake store's listing: one `ListBucketResult`, in the V2 form OSS's
//! OpenDAL lister parses (`list-type=2`) or the marker form of OBS and COS.

use std::sync::atomic::Ordering;

use super::format::{iso_date, xml_escape};
use super::{all_keys, cached_digests, Answer, Body, Shared};

enum Entry {
    Key(String),
    Prefix(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Key(k) | Entry::Prefix(k) => k,
        }
    }
}

fn tag(xml: &mut String, name: &str, value: &str) {
    xml.push_str(&format!("<{name}>{}</{name}>", xml_escape(value)));
}

pub(super) fn answer(shared: &Shared, bucket: &str, query: &[(String, String)]) -> Answer {
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let v2 = q("list-type") == Some("2");
    let prefix = q("prefix").unwrap_or("");
    let delimiter = q("delimiter").filter(|d| !d.is_empty());
    let max_keys = q("max-keys")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1000);
    let limit = max_keys
        .min(shared.page_size.load(Ordering::Relaxed))
        .max(1);
    let after = if v2 {
        q("continuation-token").or(q("start-after"))
    } else {
        q("marker")
    }
    .filter(|s| !s.is_empty());

    // Sorted keys; the keys under one common prefix are adjacent.
    let mut entries: Vec<Entry> = Vec::new();
    for key in all_keys(&shared.root) {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        match delimiter.and_then(|d| rest.find(d).map(|i| &rest[..i + d.len()])) {
            Some(group) => {
                let common = format!("{prefix}{group}");
                if !matches!(entries.last(), Some(Entry::Prefix(p)) if *p == common) {
                    entries.push(Entry::Prefix(common));
                }
            }
            None => entries.push(Entry::Key(key)),
        }
    }
    entries.retain(|e| after.is_none_or(|a| e.name() > a));
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    let next = entries.last().map(|e| e.name().to_string());

    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>");
    tag(&mut xml, "Name", bucket);
    tag(&mut xml, "Prefix", prefix);
    if v2 {
        if let Some(t) = q("continuation-token") {
            tag(&mut xml, "ContinuationToken", t);
        }
        if let Some(s) = q("start-after") {
            tag(&mut xml, "StartAfter", s);
        }
    } else {
        tag(&mut xml, "Marker", q("marker").unwrap_or(""));
    }
    tag(&mut xml, "MaxKeys", &max_keys.to_string());
    if let Some(d) = delimiter {
        tag(&mut xml, "Delimiter", d);
    }
    tag(&mut xml, "IsTruncated", &truncated.to_string());
    match (truncated, next, v2) {
        (true, Some(n), true) => tag(&mut xml, "NextContinuationToken", &n),
        (true, Some(n), false) => tag(&mut xml, "NextMarker", &n),
        _ => {}
    }
    if v2 {
        tag(&mut xml, "KeyCount", &entries.len().to_string());
    }
    // All Contents, then all CommonPrefixes (the lists must not interleave
    // for OpenDAL's quick-xml structs).
    for entry in &entries {
        let Entry::Key(key) = entry else { continue };
        let file = shared.root.join(key);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let Some((md5, _)) = cached_digests(shared, key, &file, meta.len(), modified) else {
            continue;
        };
        xml.push_str("<Contents>");
        tag(&mut xml, "Key", key);
        tag(&mut xml, "LastModified", &iso_date(modified));
        tag(&mut xml, "ETag", &format!("\"{md5}\""));
        tag(&mut xml, "Size", &meta.len().to_string());
        tag(&mut xml, "StorageClass", "STANDARD");
        xml.push_str("</Contents>");
    }
    for entry in &entries {
        if let Entry::Prefix(p) = entry {
            xml.push_str("<CommonPrefixes>");
            tag(&mut xml, "Prefix", p);
            xml.push_str("</CommonPrefixes>");
        }
    }
    xml.push_str("</ListBucketResult>");
    Answer {
        status: 200,
        headers: vec![("Content-Type", "application/xml".into())],
        body: Body::Bytes(xml.into_bytes()),
    }
}
