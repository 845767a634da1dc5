//! Deciding a document's encoding once, before parsing, and turning it into UTF-8.
//!
//! The order is RFC 7303's, as feed readers apply it: a byte order mark; then the HTTP
//! `charset` parameter (for XML media types and `text/*`); then the XML declaration;
//! then a sniff (UTF-16 without a BOM shows itself by its zero bytes); then UTF-8. When
//! HTTP and the declaration disagree, the one under which the document decodes without
//! errors wins, and HTTP wins a tie. A declared encoding the bytes are not valid in
//! falls back to the next candidate. NUL characters, which XML never allows, are dropped.
//!
//! One exception keeps stored posts as they are: a document that says (or implies, by
//! saying nothing) UTF-8 but has invalid bytes is decoded as UTF-8 with those bytes
//! replaced, as herald always did, so that its stored posts do not change.
//!
//! The result is UTF-8 text whose XML declaration no longer names an encoding, so the
//! parser reads it as UTF-8 and never switches encodings half way (which crashed:
//! `set_encoding() called after prefix buffer was drained`).

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// A document as UTF-8, and what it was decoded from.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub text: String,
    /// The encoding used, when it was not UTF-8 (for the poll report).
    pub encoding: Option<&'static str>,
    /// Bytes that were not valid in the encoding used and were replaced.
    pub replaced: bool,
}

/// Decodes `bytes` (a feed body) to UTF-8; `content_type` is the HTTP header, if any.
pub fn decode(bytes: &[u8], content_type: Option<&str>) -> Decoded {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        return finish(encoding, &bytes[bom..], false);
    }
    let http = content_type.and_then(http_charset);
    let declared = declared_encoding(bytes);
    let sniffed = sniff_utf16(bytes);
    // The candidates in order, without repeats.
    let mut candidates: Vec<&'static Encoding> = Vec::new();
    for e in [http, declared, sniffed].into_iter().flatten() {
        if !candidates.contains(&e) {
            candidates.push(e);
        }
    }
    // HTTP and the declaration disagree: the one the bytes decode in wins (HTTP on a tie).
    // Every byte decodes in a single-byte charset, so against a UTF-8 declaration that the
    // bytes bear out (valid, and not just ASCII) such a charset, usually a server's default
    // for text/* (Apache's ISO-8859-1), does not count as decoding them.
    let utf8_borne_out = |h: &'static Encoding, d: &'static Encoding| {
        d == UTF_8 && h.is_single_byte() && !bytes.is_ascii() && std::str::from_utf8(bytes).is_ok()
    };
    if let (Some(h), Some(d)) = (http, declared)
        && h != d
        && ((!decodes_cleanly(h, bytes) && decodes_cleanly(d, bytes)) || utf8_borne_out(h, d))
    {
        candidates.retain(|e| *e != d);
        candidates.insert(0, d);
    }
    for encoding in &candidates {
        // Historical behaviour for UTF-8 (see the module docs): replace, keep going.
        if *encoding == UTF_8 {
            return finish(UTF_8, bytes, true);
        }
        if decodes_cleanly(encoding, bytes) {
            return finish(encoding, bytes, true);
        }
    }
    // A declaration the bytes refute, and the bytes are UTF-8: XML's default.
    if !candidates.is_empty() && std::str::from_utf8(bytes).is_ok() {
        return finish(UTF_8, bytes, true);
    }
    if let Some(first) = candidates.first() {
        // Nothing fits: the first candidate, with the bad bytes replaced.
        return finish(first, bytes, true);
    }
    // Nothing said: XML's default, UTF-8 (repaired as before, see the module docs).
    finish(UTF_8, bytes, true)
}

/// Decodes with `encoding` (BOM already removed) and drops the declaration's encoding.
fn finish(encoding: &'static Encoding, bytes: &[u8], strip_bom: bool) -> Decoded {
    let (text, replaced) = if strip_bom {
        let (cow, _, replaced) = encoding.decode(bytes);
        (cow.into_owned(), replaced)
    } else {
        let (cow, replaced) = encoding.decode_without_bom_handling(bytes);
        (cow.into_owned(), replaced)
    };
    // NUL is never XML; a parser that meets "\0<" takes it for UTF-16 and switches.
    let text = if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text
    };
    Decoded {
        text: without_declared_encoding(text),
        encoding: (encoding != UTF_8).then(|| encoding.name()),
        replaced,
    }
}

fn decodes_cleanly(encoding: &'static Encoding, bytes: &[u8]) -> bool {
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .is_some()
}

/// The `charset` parameter of a Content-Type header, when it names an encoding.
fn http_charset(content_type: &str) -> Option<&'static Encoding> {
    let mut parts = content_type.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    // RFC 7303: the charset of XML and text media types is authoritative; for others
    // (application/octet-stream, a JSON type) it is ignored.
    let applies = media.ends_with("xml") || media.starts_with("text/") || media.ends_with("+json");
    if !applies {
        return None;
    }
    parts.find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| Encoding::for_label(value.trim().trim_matches(['"', '\'']).as_bytes()))
            .flatten()
    })
}

/// The `encoding` of an XML declaration at the start of the bytes (ASCII-compatible
/// encodings only; UTF-16 is found by its BOM or its zero bytes).
fn declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let head = &bytes[start..];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.iter().take(512).position(|b| *b == b'>')?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let label = pseudo_attribute(decl, "encoding")?;
    let encoding = Encoding::for_label(label.as_bytes())?;
    // A UTF-16 label on ASCII bytes is a lie the bytes themselves refute.
    (encoding != UTF_16LE && encoding != UTF_16BE).then_some(encoding)
}

/// UTF-16 without a BOM: ASCII markup with a zero byte beside every character. Most of
/// the first 512 bytes' odd (LE) or even (BE) positions are zero, and few of the others.
fn sniff_utf16(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(512)];
    if head.len() < 8 {
        return None;
    }
    let zeros = |parity: usize| {
        head.iter()
            .skip(parity)
            .step_by(2)
            .filter(|b| **b == 0)
            .count()
    };
    let pairs = head.len() / 2;
    let (even, odd) = (zeros(0), zeros(1));
    if odd * 10 >= pairs * 7 && even * 10 <= pairs {
        Some(UTF_16LE)
    } else if even * 10 >= pairs * 7 && odd * 10 <= pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// The value of `name="…"` (or `'…'`) in an XML declaration.
fn pseudo_attribute<'a>(decl: &'a str, name: &str) -> Option<&'a str> {
    let at = decl.find(name)?;
    let rest = decl[at + name.len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    value.find(quote).map(|end| &value[..end])
}

/// `text` with the `encoding` pseudo-attribute removed from its XML declaration, and
/// from any declaration-like `<?xml …?>` further in (a document pasted twice, a template
/// repeated): feed-rs switches encodings at each one it meets, and panics doing so.
fn without_declared_encoding(mut text: String) -> String {
    let mut from = 0;
    while let Some(found) = text[from..].find("<?xml") {
        let start = from + found;
        let after = start + "<?xml".len();
        from = after;
        if !text[after..].starts_with(|c: char| c.is_ascii_whitespace()) {
            continue; // <?xml-stylesheet …?>
        }
        let Some(end) = text[after..].find("?>").map(|e| after + e) else {
            break;
        };
        if let Some((at, len)) = encoding_pseudo_attribute(&text[after..end]) {
            text.replace_range(after + at..after + at + len, "");
        }
    }
    text
}

/// Where `encoding="…"` (or `'…'`) is in a declaration's inside, and its length.
fn encoding_pseudo_attribute(decl: &str) -> Option<(usize, usize)> {
    let at = decl.find("encoding")?;
    let rest = &decl[at + "encoding".len()..];
    let after_eq = rest.trim_start().strip_prefix('=')?.trim_start();
    let quote = after_eq
        .chars()
        .next()
        .filter(|c| *c == '"' || *c == '\'')?;
    let close = after_eq[1..].find(quote)?;
    let value_start = decl.len() - after_eq.len();
    Some((at, value_start + 1 + close + 1 - at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(encoding: &str, body: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\" encoding=\"{encoding}\"?><rss><t>{body}</t></rss>")
            .into_bytes()
    }

    #[test]
    fn reads_boms_for_utf8_and_utf16_either_way() {
        let text =
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><rss><t>caf\u{e9} \u{65e5}</t></rss>";
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        for bytes in [le, be] {
            let d = decode(&bytes, None);
            assert!(d.text.contains("caf\u{e9} \u{65e5}"), "{}", d.text);
            assert!(d.encoding.unwrap().starts_with("UTF-16"));
            assert!(!d.text.contains("encoding="), "{}", d.text);
        }
        let mut utf8 = b"\xEF\xBB\xBF".to_vec();
        utf8.extend_from_slice(&xml("ISO-8859-1", "caf\u{e9}"));
        let d = decode(&utf8, None);
        assert!(
            d.text.contains("caf\u{e9}") && d.encoding.is_none(),
            "the BOM wins"
        );
    }

    #[test]
    fn sniffs_utf16_without_a_bom() {
        let text = "<?xml version=\"1.0\"?><feed><t>\u{e9}t\u{e9}</t></feed>";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert!(decode(&le, None).text.contains("\u{e9}t\u{e9}"));
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert!(decode(&be, None).text.contains("\u{e9}t\u{e9}"));
    }

    #[test]
    fn decodes_the_legacy_encodings_feeds_declare() {
        for (label, text) in [
            ("Shift_JIS", "\u{65e5}\u{672c}\u{8a9e}"),
            ("EUC-JP", "\u{65e5}\u{672c}\u{8a9e}"),
            ("Big5", "\u{4e2d}\u{6587}"),
            ("GB2312", "\u{4e2d}\u{6587}"),
            ("GB18030", "\u{4e2d}\u{6587}"),
            ("EUC-KR", "\u{d55c}\u{ad6d}\u{c5b4}"),
            (
                "KOI8-R",
                "\u{440}\u{443}\u{441}\u{441}\u{43a}\u{438}\u{439}",
            ),
            ("windows-1251", "\u{440}\u{443}\u{441}"),
            ("TIS-620", "\u{e20}\u{e32}\u{e29}\u{e32}"),
            ("ISO-8859-2", "\u{17c}\u{f3}\u{142}w"),
            ("windows-1252", "\u{201c}caf\u{e9}\u{201d}"),
        ] {
            let encoding = Encoding::for_label(label.as_bytes()).unwrap();
            let doc =
                format!("<?xml version=\"1.0\" encoding=\"{label}\"?><rss><t>{text}</t></rss>");
            let (bytes, _, _) = encoding.encode(&doc);
            let d = decode(&bytes, None);
            assert!(d.text.contains(text), "{label}: {}", d.text);
            assert!(!d.replaced, "{label}");
            assert_eq!(d.encoding, Some(encoding.name()), "{label}");
        }
    }

    #[test]
    fn http_charset_wins_unless_the_bytes_refute_it() {
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(
            "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><rss><t>\u{65e5}\u{672c}</t></rss>",
        );
        // HTTP says EUC-JP, the declaration Shift_JIS, the bytes are Shift_JIS.
        let d = decode(&sjis, Some("application/rss+xml; charset=EUC-JP"));
        assert!(d.text.contains("\u{65e5}\u{672c}"), "{}", d.text);
        // HTTP's charset on a type it does not govern is ignored.
        let d = decode(
            &xml("UTF-8", "x"),
            Some("application/octet-stream; charset=KOI8-R"),
        );
        assert_eq!(d.encoding, None);
        // A tie: HTTP wins.
        let (latin, _, _) = encoding_rs::WINDOWS_1252
            .encode("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><t>\u{e9}</t>");
        let d = decode(&latin, Some("text/xml; charset=windows-1251"));
        assert_eq!(d.encoding, Some("windows-1251"));
        // A server's single-byte default against UTF-8 the bytes bear out: UTF-8.
        let d = decode(
            &xml("UTF-8", "caf\u{e9}"),
            Some("text/xml; charset=ISO-8859-1"),
        );
        assert_eq!(d.encoding, None);
        assert!(d.text.contains("caf\u{e9}"), "{}", d.text);
    }

    #[test]
    fn a_wrong_declaration_falls_back_and_utf8_keeps_its_old_repair() {
        // Declared Shift_JIS, but the bytes are UTF-8.
        let d = decode(
            &xml("Shift_JIS", "\u{65e5}\u{672c}\u{8a9e}\u{3067}\u{3059}"),
            None,
        );
        assert!(d.text.contains("\u{65e5}\u{672c}\u{8a9e}"), "{}", d.text);
        // Declared UTF-8 with one stray byte: as before, replaced.
        let mut bytes = xml("UTF-8", "caf\u{e9} ");
        bytes.splice(bytes.len() - 11..bytes.len() - 11, [0xFF]);
        let d = decode(&bytes, None);
        assert!(d.replaced && d.text.contains('\u{fffd}') && d.text.contains("caf\u{e9}"));
        // Nothing declared: UTF-8, repaired the same way (stored posts stay as they are).
        let d = decode(b"<rss><t>caf\xe9</t></rss>", None);
        assert!(d.replaced && d.text.contains("caf\u{fffd}"), "{}", d.text);
    }

    #[test]
    fn the_declaration_loses_only_its_encoding() {
        assert_eq!(
            without_declared_encoding(
                "<?xml version=\"1.0\" encoding='koi8-r' standalone=\"yes\"?><a/>".into()
            ),
            "<?xml version=\"1.0\"  standalone=\"yes\"?><a/>"
        );
        assert_eq!(without_declared_encoding("<a/>".into()), "<a/>");
        assert_eq!(
            without_declared_encoding(
                "<?xml version='1.0' encoding='utf-8'?><?xml-stylesheet href='s.xsl'?><a><?xml version='1.0' encoding='latin1'?></a>".into()
            ),
            "<?xml version='1.0' ?><?xml-stylesheet href='s.xsl'?><a><?xml version='1.0' ?></a>"
        );
    }
}
