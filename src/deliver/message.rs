//! Building one subscriber's message, and transactional mail (confirmations).
//!
//! Nothing built here can carry a header line a relay must refuse: the subject is cut to
//! [`crate::render::email::SUBJECT_MAX_CHARS`], names and addresses are checked against today's rules (a stored
//! row that fails them fails only its own message, with the reason), lettre folds the
//! rest, and a final check refuses any header line over 998 bytes (RFC 5322 §2.1.1). A
//! panic inside the MIME builder is caught and becomes that message's error.

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::domain::token::SigningKey;
use crate::domain::verp::{self, DeliveryRef};
use crate::domain::{SubscriberEmail, SubscriberName};
use crate::render::email::cap_subject;
use crate::render::{PersonalFields, RenderedIssue};

/// Longest header line RFC 5322 allows, without its CRLF.
pub const MAX_HEADER_LINE: usize = 998;

/// What every message of an issue shares.
#[derive(Debug, Clone)]
pub struct MessageContext {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// MAIL FROM: where bounces go.
    pub envelope_sender: Address,
    /// `List-Id` value, e.g. `"Field Notes weekly" <weekly.news.example.org>`.
    pub list_id: String,
    /// Where mailto unsubscribes go.
    pub unsubscribe_mailbox: Address,
    /// Signs each finished message, when `[smtp.dkim]` is set.
    pub dkim: Option<std::sync::Arc<super::dkim::DkimSigner>>,
    /// With `smtp.bounce_address` set: the key that signs each message's VERP envelope
    /// sender (`bounces+<token>@…`, see [`crate::domain::verp`]).
    pub verp: Option<SigningKey>,
}

impl MessageContext {
    /// `list_label` is the digest name; `domain` the site's host. The addresses were
    /// parsed when the config was read.
    pub fn new(
        from: &Mailbox,
        reply_to: Option<&Mailbox>,
        bounce: Option<&Mailbox>,
        site_title: &str,
        list_label: &str,
        domain: &str,
    ) -> Self {
        let envelope_sender = bounce.unwrap_or(from).email.clone();
        // RFC 2919: the phrase is optional; keep it only when it needs no encoding and
        // is short.
        let phrase = format!("{site_title} {list_label}");
        let list_id = if phrase.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            && !phrase.contains(['"', '\\'])
            && phrase.len() <= 100
        {
            format!("\"{phrase}\" <{list_label}.{domain}>")
        } else {
            format!("<{list_label}.{domain}>")
        };
        Self {
            unsubscribe_mailbox: envelope_sender.clone(),
            from: from.clone(),
            reply_to: reply_to.cloned(),
            envelope_sender,
            list_id,
            dkim: None,
            verp: None,
        }
    }

    /// The context with VERP envelope senders signed by `key`, when there is a bounce
    /// address (without one, bounces go to the From address, which is not VERP's).
    pub fn with_verp(mut self, bounce: Option<&Mailbox>, key: &SigningKey) -> Self {
        self.verp = bounce.map(|_| key.clone());
        self
    }

    /// The envelope sender of one message: its VERP address when VERP applies.
    fn envelope_sender_for(&self, delivery: Option<DeliveryRef>) -> Result<Address, String> {
        match (&self.verp, delivery) {
            (Some(key), Some(delivery)) => verp::address(key, &self.envelope_sender, delivery)
                .parse()
                .map_err(|e| format!("VERP envelope sender: {e}")),
            _ => Ok(self.envelope_sender.clone()),
        }
    }

    /// The context with messages signed by `signer`.
    pub fn signed_by(mut self, signer: Option<std::sync::Arc<super::dkim::DkimSigner>>) -> Self {
        self.dkim = signer;
        self
    }

    /// `bytes` signed when DKIM is configured, after the last change to the message.
    fn finish(
        &self,
        bytes: Vec<u8>,
        date: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<u8>, String> {
        match &self.dkim {
            Some(signer) => signer
                .sign(&bytes, date.timestamp())
                .map_err(|e| format!("DKIM: {e}")),
            None => Ok(bytes),
        }
    }
}

/// One message, ready for the transport.
#[derive(Debug)]
pub struct BuiltMessage {
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
}

/// Who one message of an issue goes to, and what names it.
#[derive(Debug, Clone, Copy)]
pub struct Personal<'a> {
    pub to: &'a SubscriberEmail,
    pub fields: &'a PersonalFields,
    /// Their unsubscribe token.
    pub token: &'a str,
    pub message_id: &'a str,
    /// The delivery, named in the VERP envelope sender (`None`: a preview).
    pub delivery: Option<DeliveryRef>,
}

/// Builds a subscriber's message: multipart/alternative (text, then HTML), Date,
/// Message-ID, List-Id, List-Unsubscribe with an https URL and a mailto, and
/// List-Unsubscribe-Post for RFC 8058 one-click unsubscribes.
pub fn build_message(
    ctx: &MessageContext,
    issue: &RenderedIssue,
    personal: &Personal<'_>,
    date: chrono::DateTime<chrono::Utc>,
) -> Result<BuiltMessage, String> {
    let Personal {
        to,
        fields,
        token,
        message_id,
        delivery,
    } = *personal;
    let address = checked_address(to)?;
    let recipient = Mailbox::new(checked_name(fields.name.as_deref())?, address.clone());
    let list_unsubscribe = format!(
        "<{}>, <mailto:{}?subject=unsubscribe%20{}>",
        fields.unsubscribe_url, ctx.unsubscribe_mailbox, token
    );
    let envelope = Envelope::new(Some(ctx.envelope_sender_for(delivery)?), vec![address])
        .map_err(|e| e.to_string())?;
    let bytes = guarded(|| {
        let mut builder = lettre::Message::builder()
            .from(ctx.from.clone())
            .to(recipient)
            .subject(cap_subject(&issue.subject))
            .date(date.into())
            .message_id(Some(message_id.to_owned()))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Id"),
                ctx.list_id.clone(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                list_unsubscribe,
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
        if let Some(reply_to) = &ctx.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        let message = builder
            .envelope(envelope.clone())
            // Both parts come quoted-printable encoded from the rendered issue (encoded
            // once per issue, fields per subscriber): encoding is most of the work of a
            // message.
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(
                        Body::dangerous_pre_encoded(
                            issue.text_qp_for(fields),
                            ContentTransferEncoding::QuotedPrintable,
                        ),
                    ))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(
                        Body::dangerous_pre_encoded(
                            issue.html_qp_for(fields),
                            ContentTransferEncoding::QuotedPrintable,
                        ),
                    )),
            )
            .map_err(|e| e.to_string())?;
        Ok(message.formatted())
    })?;
    check_header_lines(&bytes)?;
    let bytes = ctx.finish(bytes, date)?;
    Ok(BuiltMessage { envelope, bytes })
}

/// A transactional message (a confirmation): text and HTML, no list headers.
#[derive(Debug, Clone)]
pub struct Transactional<'a> {
    pub to: &'a SubscriberEmail,
    pub name: Option<&'a str>,
    pub subject: &'a str,
    pub text: String,
    pub html: String,
    pub message_id: &'a str,
    pub date: chrono::DateTime<chrono::Utc>,
    /// The outbox row, named in the VERP envelope sender.
    pub delivery: Option<DeliveryRef>,
    /// For mail that belongs to the subscription (the welcome): its unsubscribe URL, as
    /// List-Unsubscribe with RFC 8058 one-click.
    pub list_unsubscribe: Option<&'a str>,
}

/// Builds a transactional message from the operator's sender to one address.
pub fn build_transactional(
    ctx: &MessageContext,
    m: Transactional<'_>,
) -> Result<BuiltMessage, String> {
    let address = checked_address(m.to)?;
    // A stored name that fails today's rules is left out of a confirmation rather than
    // failing it: the name is not what the mail is for.
    let name = checked_name(m.name).unwrap_or(None);
    let envelope = Envelope::new(
        Some(ctx.envelope_sender_for(m.delivery)?),
        vec![address.clone()],
    )
    .map_err(|e| e.to_string())?;
    let bytes = guarded(|| {
        let mut builder = lettre::Message::builder()
            .from(ctx.from.clone())
            .to(Mailbox::new(name, address))
            .subject(cap_subject(m.subject))
            .date(m.date.into())
            .message_id(Some(m.message_id.to_owned()))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ));
        if let Some(url) = m.list_unsubscribe {
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        if let Some(reply_to) = &ctx.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        let message = builder
            .envelope(envelope.clone())
            .multipart(MultiPart::alternative_plain_html(m.text, m.html))
            .map_err(|e| e.to_string())?;
        Ok(message.formatted())
    })?;
    check_header_lines(&bytes)?;
    let bytes = ctx.finish(bytes, m.date)?;
    Ok(BuiltMessage { envelope, bytes })
}

/// The stored address as lettre's, if it passes today's rules.
fn checked_address(to: &SubscriberEmail) -> Result<Address, String> {
    to.check()?;
    to.as_str()
        .parse()
        .map_err(|e| format!("address {}: {e}", to.masked()))
}

/// The stored name for a header, if it passes today's rules; `None` when there is none.
fn checked_name(name: Option<&str>) -> Result<Option<String>, String> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(name) => {
            SubscriberName::check_stored(name).map_err(|e| {
                format!("{e}; correct it with `herald subscribers add ADDRESS --name NAME`")
            })?;
            Ok(Some(name.to_owned()))
        }
    }
}

/// Runs lettre's builder, turning a panic inside it into this message's error.
fn guarded(build: impl FnOnce() -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(format!("the MIME builder failed: {what}"))
    })
}

/// Refuses a message with a header line a relay must refuse (over 998 bytes).
fn check_header_lines(bytes: &[u8]) -> Result<(), String> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    match bytes[..end]
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
        .max()
    {
        Some(longest) if longest > MAX_HEADER_LINE => Err(format!(
            "a header line would be {longest} bytes long (at most {MAX_HEADER_LINE} are allowed)"
        )),
        _ => Ok(()),
    }
}
