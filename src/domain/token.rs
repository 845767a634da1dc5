//! Signed tokens for links in emails: unsubscribe and confirm.
//!
//! A token is `<subscriber id>.<purpose letter>.<base64url HMAC-SHA256>` where the MAC
//! covers the purpose, the subscriber id and the subscriber's address (lower-cased), under
//! the operator's signing secret. A token for one purpose never works for another, a token
//! stops working when the address changes, and checking one takes constant time
//! (`Mac::verify_slice`). Tokens carry no expiry: an unsubscribe link in a year-old email
//! must still work (RFC 8058 wants one-click unsubscribes to keep working).

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

    fn mac(&self, purpose: TokenPurpose, id: SubscriberId, email: &str) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(&[purpose.letter() as u8, 0]);
        mac.update(id.0.to_string().as_bytes());
        mac.update(&[0]);
        mac.update(email.to_lowercase().as_bytes());
        mac
    }

    /// A token for `purpose`, bound to the subscriber and their address.
    pub fn sign(&self, purpose: TokenPurpose, id: SubscriberId, email: &str) -> String {
        let tag = self.mac(purpose, id, email).finalize().into_bytes();
        format!(
            "{}.{}.{}",
            id.0,
            purpose.letter(),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The subscriber id a token names, before it is verified (to look the address up).
    pub fn claimed_id(token: &str) -> Option<SubscriberId> {
        token.split('.').next()?.parse().ok().map(SubscriberId)
    }

    /// Whether `token` was signed by this key for this purpose, subscriber and address.
    pub fn verify(
        &self,
        token: &str,
        purpose: TokenPurpose,
        id: SubscriberId,
        email: &str,
    ) -> bool {
        let mut parts = token.split('.');
        let (Some(claimed), Some(letter), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        if claimed != id.0.to_string() || letter.len() != 1 || !letter.starts_with(purpose.letter())
        {
            return false;
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        self.mac(purpose, id, email).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_purpose_subscriber_and_address() {
        let key = SigningKey::new(b"secret");
        let id = SubscriberId(42);
        let token = key.sign(TokenPurpose::Unsubscribe, id, "Anna@Example.org");
        assert!(token.starts_with("42.u."));
        assert_eq!(SigningKey::claimed_id(&token), Some(id));
        assert!(key.verify(&token, TokenPurpose::Unsubscribe, id, "anna@example.org"));
        assert!(!key.verify(&token, TokenPurpose::Confirm, id, "anna@example.org"));
        assert!(!key.verify(
            &token,
            TokenPurpose::Unsubscribe,
            SubscriberId(43),
            "anna@example.org"
        ));
        assert!(!key.verify(&token, TokenPurpose::Unsubscribe, id, "other@example.org"));
        assert!(!SigningKey::new(b"other").verify(
            &token,
            TokenPurpose::Unsubscribe,
            id,
            "anna@example.org"
        ));
    }

    #[test]
    fn tampered_tokens_fail() {
        let key = SigningKey::new(b"secret");
        let id = SubscriberId(7);
        let token = key.sign(TokenPurpose::Confirm, id, "a@b.org");
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            flipped.as_str(),
            "",
            "7",
            "7.c",
            "7.c.!!!",
            "x.c.abc",
            &format!("{token}.extra"),
            &token.replacen("7.", "8.", 1),
        ] {
            assert!(
                !key.verify(bad, TokenPurpose::Confirm, id, "a@b.org"),
                "{bad}"
            );
        }
    }
}
