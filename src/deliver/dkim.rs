//! DKIM signing (RFC 6376), relaxed/relaxed, with RSA-SHA256 or Ed25519-SHA256 (RFC 8463).
//!
//! In: one finished message (CRLF lines, as lettre formats it) after personalisation.
//! Out: the same bytes with a `DKIM-Signature` header in front. Keys are PKCS#8 PEM
//! (`herald dkim keygen` writes one) or PKCS#1 `RSA PRIVATE KEY` PEM as older tools
//! write them; the crypto is aws-lc-rs, the provider rustls already uses (the `rsa`
//! crate carries an open timing advisory). Nothing here reads DNS: [`DkimSigner::dns_record`]
//! says what the operator must publish.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::config::{DkimAlgorithm, DkimConfig};

/// Smallest RSA key herald signs with (RFC 8301 requires 1024; 2048 is today's floor at
/// the big mailbox providers).
const RSA_MIN_BITS: usize = 2048;

/// Largest key file read.
const KEY_FILE_MAX: u64 = 64 * 1024;

/// A loaded key and what to sign with it.
pub struct DkimSigner {
    domain: String,
    selector: String,
    /// Lower-case header names, in signing order.
    headers: Vec<String>,
    key: Key,
}

enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// Loads the key of `[smtp.dkim]`: from `private_key` when set, else from the PEM text
    /// in `HERALD_DKIM_KEY` (`env_key`). The error says which and why.
    pub fn load(config: &DkimConfig, env_key: Option<&str>) -> Result<Self, String> {
        let (pem, from) = match (&config.private_key, env_key) {
            (Some(path), _) => (read_key_file(path)?, path.display().to_string()),
            (None, Some(pem)) => (pem.to_owned(), "HERALD_DKIM_KEY".to_owned()),
            (None, None) => {
                return Err(
                    "smtp.dkim: no key: set smtp.dkim.private_key to a PEM file or put the PEM in HERALD_DKIM_KEY (`herald dkim keygen` writes one)".into(),
                );
            }
        };
        let key =
            parse_key(&pem, config.algorithm).map_err(|e| format!("smtp.dkim: {from}: {e}"))?;
        Ok(Self {
            domain: config.domain.clone(),
            selector: config.selector.clone(),
            headers: signed_names(&config.headers),
            key,
        })
    }

    pub fn algorithm(&self) -> DkimAlgorithm {
        match self.key {
            Key::Rsa(_) => DkimAlgorithm::RsaSha256,
            Key::Ed25519(_) => DkimAlgorithm::Ed25519Sha256,
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Why receivers will not count the signature for DMARC, when they will not: the From
    /// domain must be the signing domain or below it (relaxed alignment, RFC 7489 §3.1.1).
    pub fn alignment_warning(&self, from: &lettre::Address) -> Option<String> {
        let from_domain = from.domain().trim_end_matches('.').to_ascii_lowercase();
        let signing = self.domain.trim_end_matches('.').to_ascii_lowercase();
        // Relaxed alignment compares organisational domains; without the public suffix
        // list, one being the other or below it is the test that never warns wrongly.
        let below = |a: &str, b: &str| a == b || a.ends_with(&format!(".{b}"));
        let aligned = below(&from_domain, &signing) || below(&signing, &from_domain);
        (!aligned).then(|| {
            format!(
                "smtp.dkim.domain \"{}\" does not appear to align with the From domain \"{from_domain}\": unless both share one organisational domain, DMARC will not count the signature; sign with d={from_domain}",
                self.domain
            )
        })
    }

    /// The TXT record to publish at `<selector>._domainkey.<domain>`. An empty `p=`
    /// would revoke the key, so a key that cannot be exported is an error.
    pub fn dns_record(&self) -> Result<(String, String), String> {
        let (k, p) = match &self.key {
            Key::Rsa(pair) => (
                "rsa",
                pair.public_key()
                    .as_der()
                    .map(|der: PublicKeyX509Der<'_>| BASE64.encode(der.as_ref()))
                    .map_err(|_| "cannot export the RSA public key".to_owned())?,
            ),
            Key::Ed25519(pair) => ("ed25519", BASE64.encode(pair.public_key().as_ref())),
        };
        Ok((
            format!("{}._domainkey.{}", self.selector, self.domain),
            format!("v=DKIM1; k={k}; p={p}"),
        ))
    }

    /// `message` with a DKIM-Signature header in front, signed at `now` (Unix seconds).
    pub fn sign(&self, message: &[u8], now: i64) -> Result<Vec<u8>, String> {
        let (head, body) = split_message(message);
        let body_hash = BASE64.encode(Sha256::digest(relaxed_body(body)));
        let fields = header_fields(head);
        // Every instance of each listed header, bottom-up, and the name once more: the
        // extra entry signs "no further instance" (RFC 6376 §5.4.2, §8.15), so a Subject
        // or Reply-To added on the way breaks the signature instead of riding on it.
        let mut signed: Vec<&[u8]> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for name in &self.headers {
            for field in fields
                .iter()
                .rev()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                signed.push(field.1);
                names.push(name);
            }
            names.push(name);
        }
        if !fields.iter().any(|(n, _)| n.eq_ignore_ascii_case("from")) {
            return Err("the message has no From header to sign".into());
        }
        let a = match self.algorithm() {
            DkimAlgorithm::RsaSha256 => "rsa-sha256",
            DkimAlgorithm::Ed25519Sha256 => "ed25519-sha256",
        };
        // Folded so no line comes near the 998-byte limit; the b= value follows last.
        let mut header = format!(
            "DKIM-Signature: v=1; a={a}; c=relaxed/relaxed;\r\n\td={}; s={}; t={now};\r\n\th={};\r\n\tbh={body_hash};\r\n\tb=",
            self.domain,
            self.selector,
            folded_names(&names),
        );
        let mut data: Vec<u8> = Vec::with_capacity(1024);
        for field in &signed {
            data.extend_from_slice(&relaxed_header(field));
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(&relaxed_header(header.as_bytes()));
        let signature = match &self.key {
            Key::Rsa(pair) => {
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    &data,
                    &mut out,
                )
                .map_err(|_| "RSA signing failed".to_owned())?;
                out
            }
            // RFC 8463 §3: Ed25519 signs the SHA-256 of the canonical data.
            Key::Ed25519(pair) => pair.sign(&Sha256::digest(&data)).as_ref().to_vec(),
        };
        let b = BASE64.encode(signature);
        for (i, chunk) in b.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                header.push_str("\r\n\t");
            }
            header.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        }
        header.push_str("\r\n");
        let mut out = Vec::with_capacity(header.len() + message.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(message);
        Ok(out)
    }
}

/// The configured header names, lower-case, each once, From always among them.
fn signed_names(configured: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(configured.len() + 1);
    for name in configured {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if !names.iter().any(|n| n == "from") {
        names.insert(0, "from".to_owned());
    }
    names
}

/// `names` joined by ':' and folded before a name that would pass 72 columns (FWS is
/// allowed around the colons of h=, RFC 6376 §3.5).
fn folded_names(names: &[&str]) -> String {
    let mut out = String::new();
    let mut column = 3;
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(':');
            column += 1;
            if column + name.len() > 72 {
                out.push_str("\r\n\t");
                column = 1;
            }
        }
        out.push_str(name);
        column += name.len();
    }
    out
}

/// The TXT record value as DNS character-strings: quoted, at most 255 bytes each
/// (RFC 1035 §3.3), which receivers join back into one value.
pub fn txt_strings(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A new key for `algorithm` as PKCS#8 PEM.
pub fn generate_key(algorithm: DkimAlgorithm) -> Result<String, String> {
    let der: Vec<u8> = match algorithm {
        DkimAlgorithm::RsaSha256 => {
            let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| "cannot generate an RSA key".to_owned())?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair
                .as_der()
                .map_err(|_| "cannot encode the RSA key".to_owned())?;
            der.as_ref().to_vec()
        }
        DkimAlgorithm::Ed25519Sha256 => {
            Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
                .map_err(|_| "cannot generate an Ed25519 key".to_owned())?
                .as_ref()
                .to_vec()
        }
    };
    let b64 = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

fn read_key_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let shown = path.display();
    let cannot = |e: std::io::Error| format!("smtp.dkim.private_key: cannot read {shown}: {e}");
    // A regular file of sane size, checked on the opened file itself: a device or a FIFO
    // here would hang every command. Opening a FIFO for reading would block, so the path
    // is checked first and the open file again.
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(format!(
            "smtp.dkim.private_key: {shown} is not a PEM key file"
        ));
    }
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() || meta.len() > KEY_FILE_MAX {
        return Err(format!(
            "smtp.dkim.private_key: {shown} is not a PEM key file of at most 64 KiB"
        ));
    }
    let mut text = String::new();
    file.take(KEY_FILE_MAX)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    Ok(text)
}

/// The key in `pem`, which must be of `algorithm`'s kind.
fn parse_key(pem: &str, algorithm: DkimAlgorithm) -> Result<Key, String> {
    // An environment variable often carries the PEM with its newlines written as "\n".
    let unescaped;
    let pem = if pem.contains("\\n") && !pem.contains('\n') {
        unescaped = pem.replace("\\n", "\n");
        &unescaped
    } else {
        pem
    };
    let (label, der) =
        pem_block(pem).ok_or("not a PEM private key (expected -----BEGIN PRIVATE KEY-----)")?;
    match (algorithm, label.as_str()) {
        (_, "ENCRYPTED PRIVATE KEY") => Err(
            "the key is encrypted; herald needs it unencrypted (`openssl pkcs8 -in KEY -out PLAIN.pem` decrypts it; keep PLAIN.pem mode 0600)".into(),
        ),
        (DkimAlgorithm::RsaSha256, "PRIVATE KEY" | "RSA PRIVATE KEY") => {
            let pair = if label == "PRIVATE KEY" {
                RsaKeyPair::from_pkcs8(&der)
            } else {
                RsaKeyPair::from_der(&der)
            }
            .map_err(|e| {
                if Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).is_ok() {
                    "this is an Ed25519 key; set smtp.dkim.algorithm = \"ed25519-sha256\""
                        .to_owned()
                } else {
                    format!("not an RSA private key: {e}")
                }
            })?;
            let bits = pair.public_modulus_len() * 8;
            if bits < RSA_MIN_BITS {
                return Err(format!(
                    "the RSA key has {bits} bits; use at least {RSA_MIN_BITS} (`herald dkim keygen`)"
                ));
            }
            Ok(Key::Rsa(pair))
        }
        (DkimAlgorithm::Ed25519Sha256, "PRIVATE KEY") => {
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .map(Key::Ed25519)
                .map_err(|e| {
                    if RsaKeyPair::from_pkcs8(&der).is_ok() {
                        "this is an RSA key; set smtp.dkim.algorithm = \"rsa-sha256\"".to_owned()
                    } else {
                        format!("not an Ed25519 private key: {e}")
                    }
                })
        }
        (DkimAlgorithm::Ed25519Sha256, "RSA PRIVATE KEY") => {
            Err("this is an RSA key; set smtp.dkim.algorithm = \"rsa-sha256\"".into())
        }
        (_, other) => Err(format!("a PEM \"{other}\" block is not a private key")),
    }
}

/// The label and bytes of the first PEM block of `pem`.
fn pem_block(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let body: String = rest
        .get(body_start..body_end)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64.decode(body).ok().map(|der| (label, der))
}

/// The header block (without the blank line) and the body of a message.
fn split_message(message: &[u8]) -> (&[u8], &[u8]) {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&message[..at + 2], &message[at + 4..]),
        None => (message, &[]),
    }
}

/// Each header field of `head` as (name, the whole field without its final CRLF).
fn header_fields(head: &[u8]) -> Vec<(&str, &[u8])> {
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < head.len() {
        let end = head[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(head.len(), |p| at + p);
        let line_next = (end + 2).min(head.len());
        match (head[at], fields.last_mut()) {
            // A continuation line belongs to the field above.
            (b' ' | b'\t', Some(last)) => last.1 = end,
            _ => fields.push((at, end)),
        }
        at = line_next;
    }
    fields
        .into_iter()
        .filter_map(|(start, end)| {
            let field = &head[start..end];
            let colon = field.iter().position(|b| *b == b':')?;
            let name = std::str::from_utf8(&field[..colon]).ok()?.trim_end();
            Some((name, field))
        })
        .collect()
}

/// RFC 6376 §3.4.2: lower-case name, unfolded, runs of white space as one space, none at
/// the ends of the value or around the colon. Without the final CRLF.
fn relaxed_header(field: &[u8]) -> Vec<u8> {
    let colon = field.iter().position(|b| *b == b':').unwrap_or(field.len());
    let name = &field[..colon];
    let value = field.get(colon + 1..).unwrap_or_default();
    let mut out: Vec<u8> = name
        .iter()
        .filter(|b| !matches!(b, b' ' | b'\t'))
        .map(u8::to_ascii_lowercase)
        .collect();
    out.push(b':');
    let mut space = false;
    let mut started = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && started {
                    out.push(b' ');
                }
                space = false;
                started = true;
                out.push(b);
            }
        }
    }
    out
}

/// RFC 6376 §3.4.4: runs of white space as one space, none at line ends, no empty lines at
/// the end, and a final CRLF unless the body is empty.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut blank_lines = 0;
    let mut lines = body.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        // The text after the last CRLF is a line only when it holds something.
        if lines.peek().is_none() && line.is_empty() {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut canon: Vec<u8> = Vec::with_capacity(line.len());
        let mut space = false;
        for &b in line {
            if matches!(b, b' ' | b'\t') {
                space = true;
            } else {
                if space {
                    canon.push(b' ');
                }
                space = false;
                canon.push(b);
            }
        }
        if canon.is_empty() {
            blank_lines += 1;
            continue;
        }
        for _ in 0..blank_lines {
            out.extend_from_slice(b"\r\n");
        }
        blank_lines = 0;
        out.extend_from_slice(&canon);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_canonicalization_follows_rfc_6376_example() {
        // RFC 6376 §3.4.5.
        let message = b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";
        let (head, body) = split_message(message);
        let fields = header_fields(head);
        let canon: Vec<Vec<u8>> = fields.iter().map(|(_, f)| relaxed_header(f)).collect();
        assert_eq!(canon, [b"a:X".to_vec(), b"b:Y Z".to_vec()]);
        assert_eq!(relaxed_header(b"Subject:  Re: a \t b "), b"subject:Re: a b");
        assert_eq!(relaxed_body(body), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
        assert_eq!(relaxed_body(b"x"), b"x\r\n");
    }

    fn signer(headers: &[&str]) -> DkimSigner {
        let pem = generate_key(DkimAlgorithm::Ed25519Sha256).unwrap();
        let config = DkimConfig {
            domain: "example.org".into(),
            selector: "s1".into(),
            algorithm: DkimAlgorithm::Ed25519Sha256,
            private_key: None,
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
        };
        DkimSigner::load(&config, Some(&pem)).unwrap()
    }

    /// The h= tag of a signed message, unfolded.
    fn h_tag(signed: &[u8]) -> String {
        let text = String::from_utf8_lossy(signed);
        let at = text.find("h=").unwrap() + 2;
        let end = at + text[at..].find(';').unwrap();
        text[at..end].replace("\r\n\t", "")
    }

    #[test]
    fn every_instance_is_signed_and_each_name_once_more() {
        let message =
            b"From: a@example.org\r\nReceived: x\r\nReceived: y\r\nSubject: Hi\r\n\r\nbody\r\n";
        // From listed twice in any case is one entry; Received twice plus once more.
        let signed = signer(&["From", "FROM", "Received", "Subject", "Reply-To"])
            .sign(message, 1)
            .unwrap();
        assert_eq!(
            h_tag(&signed),
            "from:from:received:received:received:subject:subject:reply-to"
        );
        assert!(signed.ends_with(message));
        // From is signed even when the list forgets it; a message without From is refused.
        let signed = signer(&["Subject"]).sign(message, 1).unwrap();
        assert_eq!(h_tag(&signed), "from:from:subject:subject");
        assert!(signer(&["From"]).sign(b"Subject: x\r\n\r\n", 1).is_err());
        // A long list is folded; no line of the header passes 78 columns.
        let many: Vec<String> = (0..40).map(|i| format!("X-Header-Number-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let signed = signer(&many).sign(message, 1).unwrap();
        let head = String::from_utf8_lossy(&signed);
        let head = &head[..head.find("\r\nFrom: ").unwrap()];
        assert!(head.split("\r\n").all(|l| l.len() <= 78), "{head}");
    }

    #[test]
    fn no_input_panics_the_signer_or_the_key_reader() {
        let signer = signer(&["From", "Subject"]);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"From:\r\n \t-----BEGIN END PRIVATE KEY\\nAB=\xff\xc3";
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = signer.sign(&bytes, 0);
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_key(&text, DkimAlgorithm::RsaSha256);
            let _ = parse_key(&text, DkimAlgorithm::Ed25519Sha256);
        }
    }

    #[test]
    fn keys_arrive_escaped_or_encrypted() {
        let pem = generate_key(DkimAlgorithm::Ed25519Sha256).unwrap();
        let escaped = pem.trim_end().replace('\n', "\\n");
        assert!(parse_key(&escaped, DkimAlgorithm::Ed25519Sha256).is_ok());
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = parse_key(encrypted, DkimAlgorithm::RsaSha256)
            .err()
            .unwrap();
        assert!(err.contains("encrypted"), "{err}");
        assert_eq!(
            txt_strings(&"a".repeat(300)),
            format!("\"{}\" \"{}\"", "a".repeat(255), "a".repeat(45))
        );
    }

    #[test]
    fn keys_of_the_wrong_kind_are_named() {
        let ed = generate_key(DkimAlgorithm::Ed25519Sha256).unwrap();
        let err = parse_key(&ed, DkimAlgorithm::RsaSha256).err().unwrap();
        assert!(err.contains("Ed25519"), "{err}");
        let rsa = generate_key(DkimAlgorithm::RsaSha256).unwrap();
        let err = parse_key(&rsa, DkimAlgorithm::Ed25519Sha256).err().unwrap();
        assert!(err.contains("RSA"), "{err}");
        assert!(parse_key("hello", DkimAlgorithm::RsaSha256).is_err());
        assert!(parse_key(&ed, DkimAlgorithm::Ed25519Sha256).is_ok());
        assert!(parse_key(&rsa, DkimAlgorithm::RsaSha256).is_ok());
    }
}
