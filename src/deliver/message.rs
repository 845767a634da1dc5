//! Building one subscriber's message.

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::domain::SubscriberEmail;
use crate::render::{PersonalFields, RenderedIssue};

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
}

impl MessageContext {
    /// `list_label` is the digest name; `domain` the site's host.
    pub fn new(
        from: &str,
        reply_to: Option<&str>,
        bounce: Option<&str>,
        site_title: &str,
        list_label: &str,
        domain: &str,
    ) -> Result<Self, super::Error> {
        let from: Mailbox = from
            .parse()
            .map_err(|_| super::Error::From(from.to_owned()))?;
        let reply_to = reply_to
            .map(|r| r.parse::<Mailbox>())
            .transpose()
            .map_err(|_| super::Error::From(reply_to.unwrap_or("").to_owned()))?;
        let envelope_sender = match bounce {
            Some(b) => {
                b.parse::<Mailbox>()
                    .map_err(|_| super::Error::From(b.to_owned()))?
                    .email
            }
            None => from.email.clone(),
        };
        // RFC 2919: the phrase is optional; keep it only when it needs no encoding.
        let phrase = format!("{site_title} {list_label}");
        let list_id = if phrase.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            && !phrase.contains(['"', '\\'])
        {
            format!("\"{phrase}\" <{list_label}.{domain}>")
        } else {
            format!("<{list_label}.{domain}>")
        };
        Ok(Self {
            unsubscribe_mailbox: envelope_sender.clone(),
            from,
            reply_to,
            envelope_sender,
            list_id,
        })
    }
}

/// One message, ready for the transport.
#[derive(Debug)]
pub struct BuiltMessage {
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
}

/// Builds a subscriber's message: multipart/alternative (text, then HTML), Date,
/// Message-ID, List-Id, List-Unsubscribe with an https URL and a mailto, and
/// List-Unsubscribe-Post for RFC 8058 one-click unsubscribes.
pub fn build_message(
    ctx: &MessageContext,
    issue: &RenderedIssue,
    to: &SubscriberEmail,
    fields: &PersonalFields,
    token: &str,
    message_id: &str,
    date: chrono::DateTime<chrono::Utc>,
) -> Result<BuiltMessage, String> {
    let address: Address = to
        .as_str()
        .parse()
        .map_err(|e| format!("address {}: {e}", to.masked()))?;
    let recipient = Mailbox::new(
        fields.name.clone().filter(|n| !n.trim().is_empty()),
        address.clone(),
    );
    let list_unsubscribe = format!(
        "<{}>, <mailto:{}?subject=unsubscribe%20{}>",
        fields.unsubscribe_url, ctx.unsubscribe_mailbox, token
    );
    let mut builder = lettre::Message::builder()
        .from(ctx.from.clone())
        .to(recipient)
        .subject(issue.subject.clone())
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
    let envelope = Envelope::new(Some(ctx.envelope_sender.clone()), vec![address])
        .map_err(|e| e.to_string())?;
    let message = builder
        .envelope(envelope.clone())
        // Both parts come quoted-printable encoded from the rendered issue (encoded once
        // per issue, fields per subscriber): encoding is most of the work of a message.
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
    Ok(BuiltMessage {
        envelope,
        bytes: message.formatted(),
    })
}
