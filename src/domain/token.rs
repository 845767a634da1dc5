//! Signed tokens for links in emails: unsubscribe and confirm.
//!
//! | format | shape | MAC covers | mailed by |
//! | --- | --- | --- | --- |
//! | v1 | `<id>.<purpose>.<mac>` | purpose, id, address | herald before issue 16; still verified |
//! | v2 | `<id>.<nonce>.<purpose>.<mac>` | "v2", purpose, id, nonce, address | herald before issue 12; still verified |
//! | v2, broken | v2 with a `~` after every 16 characters of the nonce and of the MAC | the same | herald now |
//!
//! The `~` breaks (never part of a nonce or a MAC, dropped before checking) keep every
//! run of letters and digits short: a run of 30 to 35 of them that starts with 1 or 3
//! reads to spam filters as a Bitcoin address (SpamAssassin's `PDS_BTC_ID`), and a
//! subscriber's 32-character hex nonce is one for about one subscriber in sixty.
//!
//! The MAC is base64url HMAC-SHA256 under the operator's signing secret. The address is
//! lower-cased, so a token stops working when the address changes; a token for one purpose
//! never works for another; checking one takes constant time (`Mac::verify_slice`).
//!
//! The nonce is random: for an unsubscribe link it is the subscriber's own `token_nonce`,
//! for a confirm link the nonce of the one confirmation request it applies. Ids are
//! sequential, so without a nonce anyone who learned the secret could forge a link for
//! every subscriber; with one, they would also need a mail that subscriber received.
//!
//! Tokens carry no expiry: an unsubscribe link in a year-old email must still work (RFC
//! 8058). Confirm links expire through their confirmation row (see the store). Every
//! format herald has ever mailed still verifies, under the current secret or the one in
//! `HERALD_SECRET_PREVIOUS` ([`KeyRing`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::SubscriberId;

type HmacSha256 = hmac::Hmac<Sha256>;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    Unsubscribe,
    Confirm,
}

impl TokenPurpose {
    fn letter(self) -> char {
        match self {
            Self::Unsubscribe => 'u',
            Self::Confirm => 'c',
        }
    }

    fn from_letter(s: &str) -> Option<Self> {
        match s {
            "u" => Some(Self::Unsubscribe),
            "c" => Some(Self::Confirm),
            _ => None,
        }
    }
}

/// A token taken apart, before its MAC is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    pub id: SubscriberId,
    /// `None` for a v1 token.
    pub nonce: Option<std::borrow::Cow<'a, str>>,
    pub purpose: TokenPurpose,
    mac: std::borrow::Cow<'a, str>,
}

/// Characters of a nonce or MAC between two `~` breaks.
const BREAK_EVERY: usize = 16;

/// `s` with a `~` after every [`BREAK_EVERY`] characters (ASCII).
fn broken(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / BREAK_EVERY);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % BREAK_EVERY == 0 {
            out.push('~');
        }
        out.push(c);
    }
    out
}

/// `s` without its `~` breaks.
fn unbroken(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('~') {
        std::borrow::Cow::Owned(s.replace('~', ""))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

impl<'a> ParsedToken<'a> {
    /// Splits a token; `None` when it does not have the shape of any format.
    pub fn parse(token: &'a str) -> Option<Self> {
        if token.len() > 200 {
            return None;
        }
        let parts: Vec<&str> = token.split('.').collect();
        let (id, nonce, purpose, mac) = match parts.as_slice() {
            [id, purpose, mac] => (*id, None, *purpose, unbroken(mac)),
            [id, nonce, purpose, mac] if is_nonce(&unbroken(nonce)) => {
                (*id, Some(unbroken(nonce)), *purpose, unbroken(mac))
            }
            _ => return None,
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            id: SubscriberId(id.parse().ok()?),
            nonce,
            purpose: TokenPurpose::from_letter(purpose)?,
            mac,
        })
    }
}

/// Whether `s` can be a nonce: 8 to 64 characters of base64url.
fn is_nonce(s: &str) -> bool {
    (8..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh random nonce (16 bytes, base64url), or the reason there is none.
pub fn new_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The key tokens are signed with. Never printed.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<secret>)")
    }
}

impl SigningKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(secret.to_vec())
    }

    pub(crate) fn hmac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    fn mac_v1(&self, purpose: TokenPurpose, id: SubscriberId, email: &str) -> HmacSha256 {
        let mut mac = self.hmac();
        mac.update(&[purpose.letter() as u8, 0]);
        mac.update(id.0.to_string().as_bytes());
        mac.update(&[0]);
        mac.update(email.to_lowercase().as_bytes());
        mac
    }

    fn mac_v2(
        &self,
        purpose: TokenPurpose,
        id: SubscriberId,
        nonce: &str,
        email: &str,
    ) -> HmacSha256 {
        let mut mac = self.hmac();
        mac.update(b"v2\0");
        mac.update(&[purpose.letter() as u8, 0]);
        mac.update(id.0.to_string().as_bytes());
        mac.update(&[0]);
        mac.update(nonce.as_bytes());
        mac.update(&[0]);
        mac.update(email.to_lowercase().as_bytes());
        mac
    }

    /// A v2 token for `purpose`, bound to the subscriber, the nonce and the address.
    pub fn sign(
        &self,
        purpose: TokenPurpose,
        id: SubscriberId,
        nonce: &str,
        email: &str,
    ) -> String {
        let tag = self
            .mac_v2(purpose, id, nonce, email)
            .finalize()
            .into_bytes();
        format!(
            "{}.{}.{}.{}",
            id.0,
            broken(nonce),
            purpose.letter(),
            broken(&URL_SAFE_NO_PAD.encode(tag))
        )
    }

    /// A subscriber's unsubscribe token: v2 with their nonce, v1 for a row older than
    /// nonces.
    pub fn unsubscribe_token(&self, id: SubscriberId, nonce: Option<&str>, email: &str) -> String {
        match nonce {
            Some(nonce) => self.sign(TokenPurpose::Unsubscribe, id, nonce, email),
            None => self.sign_v1(TokenPurpose::Unsubscribe, id, email),
        }
    }

    /// A v1 token, as herald mailed them before nonces (kept to test that they still work).
    pub fn sign_v1(&self, purpose: TokenPurpose, id: SubscriberId, email: &str) -> String {
        let tag = self.mac_v1(purpose, id, email).finalize().into_bytes();
        format!(
            "{}.{}.{}",
            id.0,
            purpose.letter(),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Whether this key signed `token` for `purpose` and this address. The caller checks
    /// that the nonce is the one the store expects.
    pub fn verify(&self, token: &ParsedToken<'_>, purpose: TokenPurpose, email: &str) -> bool {
        if token.purpose != purpose {
            return false;
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token.mac.as_bytes()) else {
            return false;
        };
        let mac = match token.nonce.as_deref() {
            Some(nonce) => self.mac_v2(purpose, token.id, nonce, email),
            None => self.mac_v1(purpose, token.id, email),
        };
        mac.verify_slice(&tag).is_ok()
    }
}

/// The key that signs, and the older keys that still verify (a previous secret, a
/// secret herald generated before `HERALD_SECRET` was set).
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: SigningKey,
    older: Vec<SigningKey>,
}

impl KeyRing {
    pub fn new(current: SigningKey, older: Vec<SigningKey>) -> Self {
        Self { current, older }
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// The current key, then the older ones.
    pub fn all(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(&self.older)
    }

    /// Whether any key of the ring signed the token.
    pub fn verify(&self, token: &ParsedToken<'_>, purpose: TokenPurpose, email: &str) -> bool {
        std::iter::once(&self.current)
            .chain(&self.older)
            .any(|key| key.verify(token, purpose, email))
    }
}

/// Shortest signing secret accepted, in characters.
pub const MIN_SECRET_CHARS: usize = 32;

/// Secrets seen in documentation and examples: anyone can sign with them.
const KNOWN_SECRETS: &[&str] = &[
    "change-me",
    "changeme",
    "change-me-please",
    "change-this",
    "replace-me",
    "secret",
    "my-secret",
    "your-secret",
    "supersecret",
    "password",
    "herald",
    "herald-secret",
    "test",
    "example",
    "server-test-secret",
    "digest-test-secret",
    "0123456789abcdef0123456789abcdef",
    "00000000000000000000000000000000",
    "change-me-to-a-long-random-string",
    "replace-with-the-output-of-openssl-rand",
];

/// How to make a good secret, for error messages.
pub const HOW_TO_GENERATE: &str =
    "generate one with `openssl rand -base64 32` (or `head -c 32 /dev/urandom | base64`)";

/// Why a secret from the environment is refused, or `None` when it is good enough.
pub fn weak_secret(secret: &str) -> Option<String> {
    let lowered = secret.trim().to_ascii_lowercase();
    if KNOWN_SECRETS.iter().any(|k| lowered == *k) {
        return Some("it is a well-known example value that anyone can sign links with".into());
    }
    let chars = secret.chars().count();
    if chars < MIN_SECRET_CHARS {
        return Some(format!(
            "it is {chars} characters long; it must be at least {MIN_SECRET_CHARS}"
        ));
    }
    let mut distinct: Vec<char> = secret.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 {
        return Some(format!(
            "it uses only {} different characters; use random bytes",
            distinct.len()
        ));
    }
    None
}

/// Whether a previous secret is one anyone knows (it would let anyone sign old links).
pub fn is_known_secret(secret: &str) -> bool {
    let lowered = secret.trim().to_ascii_lowercase();
    KNOWN_SECRETS.iter().any(|k| lowered == *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "n0nce-abcdefgh";

    fn parsed(token: &str) -> ParsedToken<'_> {
        ParsedToken::parse(token).expect("parses")
    }

    #[test]
    fn no_new_token_holds_a_run_a_spam_filter_reads_as_a_bitcoin_address() {
        let key = SigningKey::new(b"a secret for breaking tests, long enough");
        // A subscriber's hex nonce that is one unbroken base58 run starting with 1.
        let nonce = "1abcdef23456789abcdef123456789ab";
        let token = key.sign(TokenPurpose::Unsubscribe, SubscriberId(5), nonce, "a@b.org");
        for run in token.split(|c: char| !c.is_ascii_alphanumeric()) {
            assert!(run.len() <= BREAK_EVERY, "{run} in {token}");
        }
        let parsed = ParsedToken::parse(&token).unwrap();
        assert_eq!(parsed.nonce.as_deref(), Some(nonce));
        assert!(key.verify(&parsed, TokenPurpose::Unsubscribe, "a@b.org"));
        // Tokens mailed before the breaks still verify.
        let tag = key
            .mac_v2(TokenPurpose::Unsubscribe, SubscriberId(5), nonce, "a@b.org")
            .finalize()
            .into_bytes();
        let old = format!("5.{nonce}.u.{}", URL_SAFE_NO_PAD.encode(tag));
        let parsed = ParsedToken::parse(&old).unwrap();
        assert!(key.verify(&parsed, TokenPurpose::Unsubscribe, "a@b.org"));
        // Breaks elsewhere change nothing; a changed character still fails.
        let moved = old.replacen('.', ".~", 1);
        assert!(ParsedToken::parse(&moved).is_some_and(|p| key.verify(
            &p,
            TokenPurpose::Unsubscribe,
            "a@b.org"
        )));
        let changed = token.replacen('1', "2", 1);
        assert!(!ParsedToken::parse(&changed).is_some_and(|p| key.verify(
            &p,
            TokenPurpose::Unsubscribe,
            "a@b.org"
        )));
    }

    #[test]
    fn a_token_verifies_only_for_its_purpose_subscriber_nonce_and_address() {
        let key = SigningKey::new(b"secret");
        let id = SubscriberId(42);
        let token = key.sign(TokenPurpose::Unsubscribe, id, NONCE, "Anna@Example.org");
        assert!(token.starts_with("42.n0nce-abcdefgh.u."));
        let t = parsed(&token);
        assert_eq!((t.id, t.nonce.as_deref()), (id, Some(NONCE)));
        assert!(key.verify(&t, TokenPurpose::Unsubscribe, "anna@example.org"));
        assert!(!key.verify(&t, TokenPurpose::Confirm, "anna@example.org"));
        assert!(!key.verify(&t, TokenPurpose::Unsubscribe, "other@example.org"));
        assert!(!SigningKey::new(b"other").verify(
            &t,
            TokenPurpose::Unsubscribe,
            "anna@example.org"
        ));
        for forged in [
            token.replacen("42.", "43.", 1),
            token.replacen(NONCE, "n0nce-abcdefgX", 1),
            token.replacen(".u.", ".c.", 1),
        ] {
            let f = parsed(&forged);
            assert!(!key.verify(&f, f.purpose, "anna@example.org"), "{forged}");
        }
    }

    #[test]
    fn v1_tokens_already_mailed_still_verify() {
        let key = SigningKey::new(b"secret");
        let id = SubscriberId(7);
        let v1 = key.sign_v1(TokenPurpose::Unsubscribe, id, "a@b.org");
        assert!(v1.starts_with("7.u."));
        let t = parsed(&v1);
        assert_eq!(t.nonce, None);
        assert!(key.verify(&t, TokenPurpose::Unsubscribe, "a@b.org"));
        assert!(!key.verify(&t, TokenPurpose::Unsubscribe, "c@b.org"));
    }

    #[test]
    fn tampered_and_malformed_tokens_fail() {
        let key = SigningKey::new(b"secret");
        let id = SubscriberId(7);
        let token = key.sign(TokenPurpose::Confirm, id, NONCE, "a@b.org");
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(!key.verify(&parsed(&flipped), TokenPurpose::Confirm, "a@b.org"));
        for bad in [
            "",
            "7",
            "7.c",
            "x.c.abc",
            "-7.c.abc",
            "7.short.c.abc",
            "7.c.abc.def.ghi",
            &format!("{token}.extra"),
            &"7.c.".repeat(100),
        ] {
            if let Some(t) = ParsedToken::parse(bad) {
                assert!(!key.verify(&t, TokenPurpose::Confirm, "a@b.org"), "{bad}");
            }
        }
    }

    #[test]
    fn a_key_ring_verifies_what_an_older_secret_signed() {
        let old = SigningKey::new(b"old secret");
        let ring = KeyRing::new(SigningKey::new(b"new secret"), vec![old.clone()]);
        let id = SubscriberId(3);
        let token = old.sign(TokenPurpose::Unsubscribe, id, NONCE, "a@b.org");
        assert!(ring.verify(&parsed(&token), TokenPurpose::Unsubscribe, "a@b.org"));
        let alone = KeyRing::new(SigningKey::new(b"new secret"), vec![]);
        assert!(!alone.verify(&parsed(&token), TokenPurpose::Unsubscribe, "a@b.org"));
    }

    #[test]
    fn weak_secrets_are_named_and_good_ones_pass() {
        assert!(weak_secret("change-me").unwrap().contains("well-known"));
        assert!(weak_secret("CHANGE-ME").is_some());
        assert!(
            weak_secret("short but random: 8f3k")
                .unwrap()
                .contains("at least 32")
        );
        assert!(
            weak_secret(&"ab".repeat(20))
                .unwrap()
                .contains("different characters")
        );
        assert_eq!(weak_secret("u7Qm2rX9vB4kLp0sT6wYc1Zf8Hn3Jd5A"), None);
        assert!(is_known_secret("changeme"));
        assert!(!is_known_secret("u7Qm2rX9vB4kLp0sT6wYc1Zf8Hn3Jd5A"));
    }
}
