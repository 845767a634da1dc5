//! VERP: the envelope sender of each message names its delivery, signed, so that a bounce
//! maps to the delivery it answers without guessing from the addresses in it.
//!
//! The address is `<local>+<token>@<domain>`, built from `smtp.bounce_address`
//! (`bounces@example.org` → `bounces+aeb4…@example.org`). The token is lower-case base32
//! (RFC 4648, no padding), so it survives a server that lower-cases local parts:
//!
//! | byte | meaning |
//! | --- | --- |
//! | 0 | version and kind: `d` a digest delivery, `o` an outbox message |
//! | varint | the issue id (`d`) or the outbox id (`o`) |
//! | varint | the subscriber id |
//! | 8 bytes | HMAC-SHA256 of "verp\0" and the bytes before it, truncated |
//!
//! At most 1 + 9 + 9 + 8 = 27 bytes, 44 characters: with a local part of up to
//! [`LOCAL_MAX`] characters the whole local part stays within RFC 5321's 64.

use hmac::Mac;

use super::SubscriberId;
use super::token::{KeyRing, SigningKey};

/// Longest local part of `bounce_address` VERP can extend within 64 characters.
pub const LOCAL_MAX: usize = 64 - 1 - TOKEN_MAX_CHARS;

/// Longest token, in characters.
pub const TOKEN_MAX_CHARS: usize = 44;

const MAC_BYTES: usize = 8;

/// The delivery a VERP token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryRef {
    /// A digest issue's delivery to one subscriber.
    Issue {
        issue: i64,
        subscriber: SubscriberId,
    },
    /// Transactional mail (a confirmation): one outbox row.
    Outbox {
        outbox: i64,
        subscriber: SubscriberId,
    },
}

impl DeliveryRef {
    pub fn subscriber(self) -> SubscriberId {
        match self {
            Self::Issue { subscriber, .. } | Self::Outbox { subscriber, .. } => subscriber,
        }
    }

    /// The key the store records events under (`issue:7`, `outbox:12`).
    pub fn key(self) -> String {
        match self {
            Self::Issue { issue, .. } => format!("issue:{issue}"),
            Self::Outbox { outbox, .. } => format!("outbox:{outbox}"),
        }
    }

    fn parts(self) -> (u8, i64, i64) {
        match self {
            Self::Issue { issue, subscriber } => (b'd', issue, subscriber.0),
            Self::Outbox { outbox, subscriber } => (b'o', outbox, subscriber.0),
        }
    }
}

fn mac(key: &SigningKey, payload: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = key.hmac();
    mac.update(b"verp\0");
    mac.update(payload);
    mac
}

/// The signed token for `delivery`.
pub fn token(key: &SigningKey, delivery: DeliveryRef) -> String {
    let (kind, a, b) = delivery.parts();
    let mut bytes = vec![kind];
    put_varint(&mut bytes, a);
    put_varint(&mut bytes, b);
    let tag = mac(key, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag[..MAC_BYTES]);
    base32(&bytes)
}

/// `local+token@domain` for `delivery`, from the bounce address `local@domain`.
pub fn address(key: &SigningKey, bounce: &lettre::Address, delivery: DeliveryRef) -> String {
    format!(
        "{}+{}@{}",
        bounce.user(),
        token(key, delivery),
        bounce.domain()
    )
}

/// The delivery a token names, if a key of the ring signed it. Case-insensitive.
pub fn verify(keys: &KeyRing, token: &str) -> Option<DeliveryRef> {
    if token.len() < 16 || token.len() > TOKEN_MAX_CHARS {
        return None;
    }
    let bytes = unbase32(token)?;
    let (payload, tag) = bytes.split_at_checked(bytes.len().checked_sub(MAC_BYTES)?)?;
    let signed = keys
        .all()
        .any(|key| mac(key, payload).verify_truncated_left(tag).is_ok());
    if !signed {
        return None;
    }
    let (&kind, rest) = payload.split_first()?;
    let (a, rest) = take_varint(rest)?;
    let (b, rest) = take_varint(rest)?;
    if !rest.is_empty() {
        return None;
    }
    let subscriber = SubscriberId(b);
    match kind {
        b'd' => Some(DeliveryRef::Issue {
            issue: a,
            subscriber,
        }),
        b'o' => Some(DeliveryRef::Outbox {
            outbox: a,
            subscriber,
        }),
        _ => None,
    }
}

/// The first `local+token@…` in `text` whose token verifies (an address in a header, a
/// Return-Path).
pub fn find(keys: &KeyRing, text: &str) -> Option<DeliveryRef> {
    find_all(keys, text).into_iter().next()
}

/// Every delivery a verified `local+token@…` in `text` names, once each, in order.
pub fn find_all(keys: &KeyRing, text: &str) -> Vec<DeliveryRef> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices('+').take(1000) {
        let rest = &text[at + 1..];
        let Some(end) = rest.find('@') else { continue };
        let candidate = &rest[..end];
        if end <= TOKEN_MAX_CHARS
            && candidate.bytes().all(|b| b.is_ascii_alphanumeric())
            && let Some(delivery) = verify(keys, candidate)
            && !found.contains(&delivery)
        {
            found.push(delivery);
        }
    }
    found
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let value = match c.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    // Left-over bits are padding and must be zero: one spelling per token.
    (bits < 5 && buffer & ((1 << bits) - 1) == 0).then_some(out)
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = u64::try_from(value).unwrap_or(0);
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn take_varint(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((i64::try_from(value).ok()?, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(secret: &str) -> KeyRing {
        KeyRing::new(SigningKey::new(secret.as_bytes()), vec![])
    }

    #[test]
    fn tokens_name_their_delivery_and_survive_lower_casing() {
        let keys = ring("a signing secret of enough length for tests");
        let bounce: lettre::Address = "Bounces@Example.org".parse().unwrap();
        for delivery in [
            DeliveryRef::Issue {
                issue: 1,
                subscriber: SubscriberId(1),
            },
            DeliveryRef::Issue {
                issue: i64::MAX,
                subscriber: SubscriberId(i64::MAX),
            },
            DeliveryRef::Outbox {
                outbox: 77,
                subscriber: SubscriberId(1_000_000),
            },
        ] {
            let verp = address(keys.current(), &bounce, delivery);
            let local = verp.split('@').next().unwrap();
            assert!(local.len() <= 64, "{verp}");
            assert!(local.starts_with("Bounces+"), "{verp}");
            let token = &local["Bounces+".len()..];
            assert!(token.len() <= TOKEN_MAX_CHARS);
            assert_eq!(verify(&keys, token), Some(delivery));
            assert_eq!(verify(&keys, &token.to_uppercase()), Some(delivery));
            assert_eq!(
                find(&keys, &format!("To: <{}>", verp.to_lowercase())),
                Some(delivery)
            );
        }
    }

    #[test]
    fn forged_altered_and_foreign_tokens_are_refused() {
        let keys = ring("a signing secret of enough length for tests");
        let other = ring("another secret, also long enough for tests");
        let delivery = DeliveryRef::Issue {
            issue: 3,
            subscriber: SubscriberId(42),
        };
        let good = token(keys.current(), delivery);
        assert_eq!(verify(&other, &good), None);
        // Every single-character change is refused.
        for i in 0..good.len() {
            let mut bytes = good.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(verify(&keys, &changed), None, "{changed}");
        }
        for junk in [
            "",
            "aaaa",
            &"a".repeat(44),
            &"7".repeat(45),
            "not-base32!",
            "bounces",
        ] {
            assert_eq!(verify(&keys, junk), None, "{junk}");
        }
        assert_eq!(
            find(&keys, "user+tag@example.org, bounces@example.org"),
            None
        );
        // The previous secret still verifies what it signed.
        let rotated = KeyRing::new(
            SigningKey::new(b"a new secret after rotation, long enough"),
            vec![SigningKey::new(
                b"a signing secret of enough length for tests",
            )],
        );
        assert_eq!(verify(&rotated, &good), Some(delivery));
    }
}
