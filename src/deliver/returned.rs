//! Mail that comes back to the bounce address, taken apart: delivery status
//! notifications (RFC 3464, and the plain-text shapes of MTAs and providers that do not
//! send one), complaint reports (RFC 5965 ARF), and mailto unsubscribes.
//!
//! Nothing here decides whom a message is about: it reads what the message says and
//! where a signed token can be (the VERP recipient, the returned message's headers).
//! [`crate::pipeline`] verifies the token and applies the outcome; anything else is left
//! for a person.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::{Blame, Enhanced, SendError, Stage, about_us, greylisted};

/// What a message that came back says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// A delivery failed, or is late (`delayed`), with the one classification's verdict.
    Refused {
        delayed: bool,
        blame: Blame,
        /// The status and diagnostic, for the subscriber's reason.
        detail: String,
    },
    /// A DSN that reports success (delivered, relayed, expanded): nothing to do.
    Delivered,
    /// A complaint (ARF `abuse`, `fraud`, `virus`, `other`).
    Complaint { feedback_type: String },
    /// A mailto unsubscribe: the token from the subject or the body.
    Unsubscribe { token: String },
    /// Anything else: a reply, an auto-reply, a report herald does not act on.
    ForAPerson { why: String },
}

/// A message read, with the places herald's tokens can be.
#[derive(Debug, Clone)]
pub struct Returned {
    pub said: Said,
    /// The recipient headers (To, Delivered-To, X-Original-To, Envelope-To), the
    /// returned headers and an ARF report's fields: where a VERP address shows.
    pub verp_haystack: String,
    /// The unsubscribe token in the returned message's List-Unsubscribe.
    pub list_token: Option<String>,
    /// The returned message's Message-ID, as herald writes them: (issue, subscriber).
    pub returned_delivery: Option<(i64, i64)>,
    /// The returned message's Message-ID as it is, and the report's own: what keys a
    /// report that no VERP token names.
    pub returned_message_id: Option<String>,
    pub report_id: Option<String>,
    /// The message's subject, for what is left for a person.
    pub subject: String,
}

/// Largest message read; a bounce is a few kilobytes, and a returned copy is cut.
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// Reads one message.
pub fn read(bytes: &[u8]) -> Returned {
    let bytes = &bytes[..bytes.len().min(MAX_MESSAGE_BYTES)];
    let Some(message) = MessageParser::default().parse(bytes) else {
        return Returned {
            said: Said::ForAPerson {
                why: "not a mail message".into(),
            },
            verp_haystack: String::new(),
            list_token: None,
            returned_delivery: None,
            returned_message_id: None,
            report_id: None,
            subject: String::new(),
        };
    };
    let subject = message.subject().unwrap_or("").to_owned();
    let mut haystack = String::new();
    for (name, value) in raw_headers(&message) {
        if matches!(
            name.as_str(),
            "to" | "delivered-to" | "x-original-to" | "envelope-to" | "x-envelope-to" | "x-rcpt-to"
        ) {
            haystack.push_str(&value);
            haystack.push('\n');
        }
    }
    let mut status_fields: Option<String> = None;
    let mut feedback_fields: Option<String> = None;
    let mut returned_headers: Option<String> = None;
    let mut first_text: Option<String> = None;
    for part in &message.parts {
        let (ctype, subtype) = part
            .content_type()
            .map(|c| {
                (
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("").to_ascii_lowercase(),
                )
            })
            .unwrap_or_else(|| ("text".into(), "plain".into()));
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") => {
                status_fields.get_or_insert_with(|| lossy(part.contents()));
            }
            ("message", "feedback-report") => {
                feedback_fields.get_or_insert_with(|| lossy(part.contents()));
            }
            ("message", "rfc822" | "global") | ("text", "rfc822-headers")
                if returned_headers.is_none() =>
            {
                let raw = match &part.body {
                    PartType::Message(inner) => inner.raw_message(),
                    _ => part.contents(),
                };
                returned_headers = Some(header_block(&lossy(raw)));
            }
            ("text", "plain") if first_text.is_none() && part.text_contents().is_some() => {
                first_text = part.text_contents().map(str::to_owned);
            }
            _ => {}
        }
    }
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = first_text.unwrap_or_default();
    // A plain-text bounce carries the returned headers inline, after a marker.
    if returned_headers.is_none()
        && let Some(copy) = inline_copy(&body)
    {
        returned_headers = Some(header_block(copy));
    }
    if let Some(headers) = &returned_headers {
        haystack.push_str(headers);
        haystack.push('\n');
    }
    // An ARF report names the original envelope sender (Original-Mail-From).
    if let Some(fields) = &feedback_fields {
        haystack.push_str(fields);
    }
    let list_token = returned_headers.as_deref().and_then(list_unsubscribe_token);
    let returned_delivery = returned_headers.as_deref().and_then(herald_message_id);
    let returned_message_id = returned_headers
        .as_deref()
        .and_then(|h| header_value(h, "message-id"))
        .map(|m| crate::domain::shorten(m.trim(), 200))
        .filter(|m| !m.is_empty());
    let report_id = message
        .message_id()
        .map(|m| crate::domain::shorten(m.trim(), 200))
        .filter(|m| !m.is_empty());
    let said = if let Some(fields) = feedback_fields {
        complaint(&fields)
    } else if let Some(fields) = status_fields {
        delivery_status(&fields)
    } else if looks_like_bounce(&from, &subject, &message) {
        plain_bounce(&body)
    } else if let Some(token) = mailto_token(&subject, &body) {
        Said::Unsubscribe { token }
    } else {
        Said::ForAPerson {
            why: "not a bounce, a complaint or an unsubscribe".into(),
        }
    };
    Returned {
        said,
        verp_haystack: haystack,
        list_token,
        returned_delivery,
        returned_message_id,
        report_id,
        subject,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The header fields of a message, names lower-cased, values unfolded.
fn raw_headers(message: &Message<'_>) -> Vec<(String, String)> {
    let raw = message.raw_message();
    message
        .headers()
        .iter()
        .map(|h| {
            let value = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(lossy)
                .unwrap_or_default();
            (h.name.as_str().to_ascii_lowercase(), unfold(&value))
        })
        .collect()
}

fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The header block of a message's text (up to the first empty line).
fn header_block(text: &str) -> String {
    let text = text.trim_start_matches(['\r', '\n']);
    let end = text
        .find("\r\n\r\n")
        .or_else(|| text.find("\n\n"))
        .unwrap_or(text.len());
    text[..end].to_owned()
}

/// Fields of a header block (a DSN's or an ARF report's), names lower-cased, values
/// unfolded, in order; blocks are separated by empty lines.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// An RFC 3464 `message/delivery-status`: the first recipient that failed, else the
/// first that is delayed, else success.
fn delivery_status(fields: &str) -> Said {
    let blocks = field_blocks(fields);
    let recipients: Vec<&Vec<(String, String)>> = blocks
        .iter()
        .filter(|b| field(b, "action").is_some())
        .collect();
    let action_of = |b: &Vec<(String, String)>| {
        field(b, "action")
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let pick = recipients
        .iter()
        .find(|b| action_of(b) == "failed")
        .or_else(|| recipients.iter().find(|b| action_of(b) == "delayed"));
    let Some(block) = pick else {
        return if recipients.is_empty() {
            Said::ForAPerson {
                why: "a delivery status report with no recipient in it".into(),
            }
        } else {
            Said::Delivered
        };
    };
    let delayed = action_of(block) == "delayed";
    let status = field(block, "status").unwrap_or("");
    let diagnostic = field(block, "diagnostic-code").map(|d| {
        // "smtp; 550 5.1.1 <…>: Recipient address rejected" → the reply.
        d.split_once(';').map_or(d, |(_, reply)| reply).trim()
    });
    let detail = match diagnostic {
        Some(d) if !d.is_empty() => format!("{status} ({})", shorten(d)),
        _ => status.to_owned(),
    };
    let blame = delayed_blame(
        delayed,
        classify(Enhanced::parse(status), diagnostic.unwrap_or("")),
    );
    Said::Refused {
        delayed,
        blame,
        detail,
    }
}

/// A delay is never final: at worst a soft bounce (a delay about the mailbox), never
/// a hard one.
fn delayed_blame(delayed: bool, blame: Blame) -> Blame {
    match (delayed, blame) {
        (true, Blame::Recipient) => Blame::Soft,
        (_, blame) => blame,
    }
}

/// A refusal as the one classification sees it: the reply the diagnostic quotes, with
/// the DSN's status code as its enhanced code (the status is the MTA's own verdict).
/// A temporary status counts against the address only when it is about the mailbox
/// (4.1.x, 4.2.x); a remote that cannot be reached (4.4.x), a full system (4.3.x) or
/// greylisting (4.7.x) is the way there, not the address, exactly as for SMTP replies
/// ([`SendError::is_about_mailbox`]).
pub fn classify(status: Option<Enhanced>, diagnostic: &str) -> Blame {
    let (code, text) = reply_code(diagnostic);
    // About our sender or our server, or greylisting, whatever code it came with.
    if about_us(diagnostic) {
        return match status.or_else(|| find_enhanced(diagnostic)) {
            Some(Enhanced(_, 7, _)) => Blame::Policy,
            _ => Blame::Relay,
        };
    }
    if greylisted(diagnostic) {
        return Blame::Policy;
    }
    let enhanced = status
        .or_else(|| Enhanced::parse(text))
        .or_else(|| find_enhanced(diagnostic));
    if let Some(Enhanced(4, subject, detail)) = enhanced {
        return match (subject, detail) {
            (1, _) | (2, 1 | 2) => Blame::Soft,
            (5 | 6, _) => Blame::Message,
            (7, _) => Blame::Policy,
            _ => Blame::Relay,
        };
    }
    let Some(enhanced) = enhanced else {
        // A temporary reply without a status: about the mailbox only when it says so
        // (or is a bare 450/452, as to RCPT); never more than soft.
        if let Some(code) = code.filter(|c| *c < 500) {
            return match wording(diagnostic) {
                Some(_) => Blame::Soft,
                None if matches!(code, 450 | 452) => Blame::Soft,
                None => Blame::Relay,
            };
        }
        if let Some(blame) = wording(diagnostic) {
            return blame;
        }
        return match code {
            Some(code) => SendError::reply(Stage::Rcpt, code, text).blame(),
            None => Blame::Relay,
        };
    };
    let Enhanced(class, subject, detail) = enhanced;
    // A bare "5.0.0" says nothing: the words decide, else it is not counted.
    if (subject, detail) == (0, 0) {
        return wording(diagnostic).unwrap_or(Blame::Relay);
    }
    let code = code.filter(|c| c / 100 == u16::from(class)).unwrap_or(550);
    let text = format!("{class}.{subject}.{detail} {}", strip_enhanced(text));
    SendError::reply(Stage::Rcpt, code, &text).blame()
}

/// "550 5.1.1 text" → (550, "5.1.1 text"); "550-5.1.1 text" too.
fn reply_code(reply: &str) -> (Option<u16>, &str) {
    let reply = reply.trim();
    let digits: String = reply.chars().take(3).collect();
    match digits.parse::<u16>() {
        Ok(code) if (200..600).contains(&code) && reply.len() >= 3 => {
            let rest = reply[3..].trim_start_matches(['-', ' ', ':']);
            (Some(code), rest)
        }
        _ => (None, reply),
    }
}

fn strip_enhanced(text: &str) -> &str {
    match Enhanced::parse(text) {
        Some(_) => text.split_once(' ').map_or("", |(_, rest)| rest),
        None => text,
    }
}

/// The first `x.y.z` status code anywhere in `text` ("(#5.1.1)", "status 5.2.2").
fn find_enhanced(text: &str) -> Option<Enhanced> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find_map(|i| {
        if !matches!(bytes[i], b'2' | b'4' | b'5')
            || (i > 0 && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.'))
            || bytes.get(i + 1) != Some(&b'.')
        {
            return None;
        }
        let word: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let word = word.trim_end_matches('.');
        (word.matches('.').count() == 2)
            .then(|| Enhanced::parse(word))
            .flatten()
    })
}

/// What the words of a refusal say when no code does: providers' plain-text bounces.
fn wording(text: &str) -> Option<Blame> {
    let lower = text.to_ascii_lowercase();
    const GONE: &[&str] = &[
        "user unknown",
        "unknown user",
        "no such user",
        "no such recipient",
        "account does not exist",
        "account that you tried to reach does not exist",
        "mailbox does not exist",
        "user does not exist",
        "address does not exist",
        "no mailbox here",
        "mailbox unavailable",
        "recipient unknown",
        "invalid recipient",
        "recipient address rejected",
        "account disabled",
        "account has been disabled",
        "not our customer",
    ];
    const FULL: &[&str] = &[
        "mailbox full",
        "mailbox is full",
        "over quota",
        "quota exceeded",
        "exceeded storage",
        "insufficient storage",
    ];
    // "This user doesn't have a yahoo.com account".
    let no_account = (lower.contains("doesn't have a") || lower.contains("does not have a"))
        && lower.contains("account");
    if FULL.iter().any(|w| lower.contains(w)) {
        Some(Blame::Soft)
    } else if no_account || GONE.iter().any(|w| lower.contains(w)) {
        Some(Blame::Recipient)
    } else {
        None
    }
}

fn shorten(s: &str) -> String {
    crate::domain::shorten(s, 300)
}

/// An ARF `message/feedback-report`.
fn complaint(fields: &str) -> Said {
    let blocks = field_blocks(fields);
    let kind = blocks
        .iter()
        .find_map(|b| field(b, "feedback-type"))
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match kind.as_str() {
        "abuse" | "fraud" | "virus" | "other" => Said::Complaint {
            feedback_type: kind,
        },
        "" => Said::ForAPerson {
            why: "a feedback report without a Feedback-Type".into(),
        },
        _ => Said::ForAPerson {
            why: format!("a feedback report of type \"{}\"", shorten(&kind)),
        },
    }
}

/// Whether a message without a DSN part is a bounce: from the mailer daemon, an
/// Exim-style `X-Failed-Recipients`, or a subject MTAs give bounces.
fn looks_like_bounce(from: &str, subject: &str, message: &Message<'_>) -> bool {
    let local = from.split('@').next().unwrap_or("");
    if matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon") {
        return true;
    }
    if message.header_raw("X-Failed-Recipients").is_some() {
        return true;
    }
    let subject = subject.to_ascii_lowercase();
    [
        "undeliverable",
        "undelivered mail",
        "delivery status notification",
        "mail delivery failed",
        "delivery failure",
        "failure notice",
        "returned mail",
        "mail delivery subsystem",
    ]
    .iter()
    .any(|s| subject.contains(s))
}

/// Markers after which a plain-text bounce quotes the message it returns.
const COPY_MARKERS: &[&str] = &[
    "--- below this line is a copy of the message.",
    "------ this is a copy of the message, including all the headers. ------",
    "----- original message -----",
    "------ original message ------",
    "--- original message follows.",
];

/// The quoted copy of the message in a plain-text bounce.
fn inline_copy(body: &str) -> Option<&str> {
    let lower = body.to_ascii_lowercase();
    COPY_MARKERS.iter().find_map(|marker| {
        let at = lower.find(marker)?;
        body.get(at + marker.len()..)
    })
}

/// A bounce in plain text (qmail, Yahoo, older Exim): the first status or reply code
/// before the quoted copy, and its words.
fn plain_bounce(body: &str) -> Said {
    let lower = body.to_ascii_lowercase();
    let before = COPY_MARKERS
        .iter()
        .filter_map(|m| lower.find(m))
        .min()
        .map_or(body, |at| &body[..at]);
    let reason_line = before
        .lines()
        .map(str::trim)
        .find(|l| find_enhanced(l).is_some() || reply_code_in(l).is_some())
        .or_else(|| before.lines().map(str::trim).find(|l| wording(l).is_some()));
    let Some(line) = reason_line else {
        return Said::ForAPerson {
            why: "a bounce herald cannot read a status from".into(),
        };
    };
    let delayed = {
        let b = before.to_ascii_lowercase();
        b.contains("will keep trying") || b.contains("still trying") || b.contains("delayed")
    };
    let reply = reply_code_in(line).unwrap_or(line);
    let blame = delayed_blame(delayed, classify(find_enhanced(line), reply));
    Said::Refused {
        delayed,
        blame,
        detail: shorten(line),
    }
}

/// The SMTP reply quoted in a line ("Remote host said: 550 5.1.1 …", "554: delivery
/// error: …").
fn reply_code_in(line: &str) -> Option<&str> {
    let bytes = line.as_bytes();
    (0..bytes.len().saturating_sub(2)).find_map(|i| {
        let word = line.get(i..i + 3)?;
        let next = bytes.get(i + 3).copied();
        let starts = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        (starts
            && matches!(bytes[i], b'4' | b'5')
            && word.bytes().all(|b| b.is_ascii_digit())
            && matches!(next, None | Some(b' ' | b'-' | b':')))
        .then(|| &line[i..])
    })
}

/// The unsubscribe token in a List-Unsubscribe field of `headers`: the https URL's last
/// path segment after `/unsubscribe/`, or the mailto's subject.
pub fn list_unsubscribe_token(headers: &str) -> Option<String> {
    let value = header_value(headers, "list-unsubscribe")?;
    if let Some(at) = value.find("/unsubscribe/") {
        let rest = &value[at + "/unsubscribe/".len()..];
        let token: String = rest.chars().take_while(|c| is_token_char(*c)).collect();
        if !token.is_empty() {
            return Some(token);
        }
    }
    let lower = value.to_ascii_lowercase();
    let at = lower.find("subject=unsubscribe%20")?;
    let rest = &value[at + "subject=unsubscribe%20".len()..];
    let token: String = rest.chars().take_while(|c| is_token_char(*c)).collect();
    (!token.is_empty()).then_some(token)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~')
}

/// The unfolded value of the first `name` field in a header block.
fn header_value(headers: &str, name: &str) -> Option<String> {
    let blocks = field_blocks(headers);
    blocks
        .first()
        .and_then(|b| field(b, name))
        .map(str::to_owned)
}

/// A Message-ID herald wrote for a digest delivery, `<herald.<issue>.<subscriber>@…>`.
fn herald_message_id(headers: &str) -> Option<(i64, i64)> {
    let value = header_value(headers, "message-id")?;
    let inner = value.trim().strip_prefix("<herald.")?;
    let (ids, _) = inner.split_once('@')?;
    let (issue, subscriber) = ids.split_once('.')?;
    Some((issue.parse().ok()?, subscriber.parse().ok()?))
}

/// A mailto unsubscribe's token: `unsubscribe <token>` as the subject (after any "Re:"),
/// or as a line of its own in the body.
fn mailto_token(subject: &str, body: &str) -> Option<String> {
    let from_line = |line: &str| -> Option<String> {
        let line = line.trim();
        let (word, rest) = line.split_once(char::is_whitespace)?;
        if !word.eq_ignore_ascii_case("unsubscribe") {
            return None;
        }
        let token = rest.trim();
        (!token.is_empty() && token.len() <= 200 && token.chars().all(is_token_char))
            .then(|| token.to_owned())
    };
    let mut subject = subject.trim();
    while let Some(rest) = subject
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("re:"))
        .map(|_| &subject[3..])
    {
        subject = rest.trim_start();
    }
    from_line(subject).or_else(|| body.lines().take(20).find_map(from_line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified_the_one_way() {
        let e = |s: &str| Enhanced::parse(s);
        assert_eq!(
            classify(e("5.1.1"), "550 5.1.1 <a@b.org>: User unknown"),
            Blame::Recipient
        );
        assert_eq!(classify(e("5.2.2"), "552 5.2.2 Mailbox full"), Blame::Soft);
        assert_eq!(classify(e("4.4.1"), "connection timed out"), Blame::Relay);
        assert_eq!(
            classify(e("5.7.1"), "550 5.7.1 rejected by policy"),
            Blame::Policy
        );
        assert_eq!(
            classify(e("5.3.4"), "552 5.3.4 Message too big"),
            Blame::Message
        );
        assert_eq!(classify(e("5.6.0"), ""), Blame::Message);
        assert_eq!(classify(None, "550 5.1.1 no such user"), Blame::Recipient);
        assert_eq!(
            classify(
                None,
                "554 delivery error: dd This user doesn't have a yahoo.com account"
            ),
            Blame::Recipient
        );
        assert_eq!(
            classify(
                e("5.0.0"),
                "550 Requested action not taken: mailbox unavailable"
            ),
            Blame::Recipient
        );
        assert_eq!(classify(e("5.0.0"), "550 rejected"), Blame::Relay);
        assert_eq!(classify(None, ""), Blame::Relay);
        // Postfix refusing our sender at RCPT is about us.
        assert_eq!(
            classify(e("5.1.0"), "550 5.1.0 Sender address rejected"),
            Blame::Relay
        );
        assert_eq!(
            classify(e("5.0.0"), "550 Sender address rejected: Domain not found"),
            Blame::Relay
        );
        assert_eq!(
            classify(e("5.0.0"), "550 Your server doesn't have a PTR record"),
            Blame::Relay
        );
        assert_eq!(
            classify(
                e("5.7.1"),
                "554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org"
            ),
            Blame::Policy
        );
        // Temporary: only about the mailbox counts.
        assert_eq!(classify(e("4.2.2"), "452 4.2.2 Mailbox full"), Blame::Soft);
        assert_eq!(classify(e("4.4.1"), "No route to host"), Blame::Relay);
        assert_eq!(
            classify(e("4.4.7"), "421 4.4.7 Service temporarily unavailable"),
            Blame::Relay
        );
        assert_eq!(classify(e("4.7.1"), "451 4.7.1 Greylisted"), Blame::Policy);
        assert_eq!(classify(e("4.3.0"), "451 4.3.0 Local error"), Blame::Relay);
        // Greylisting is the receiver's policy, not the mailbox; a 4xx says "later".
        assert_eq!(
            classify(
                e("4.2.0"),
                "450 4.2.0 <x@y.org>: Recipient address rejected: Greylisted"
            ),
            Blame::Policy
        );
        assert_eq!(
            classify(
                None,
                "450 <x@y.org>: Recipient address rejected: Greylisted"
            ),
            Blame::Policy
        );
        assert_eq!(classify(None, "421 Too many connections"), Blame::Relay);
        assert_eq!(classify(None, "451 Temporary local problem"), Blame::Relay);
        assert_eq!(classify(None, "450 mailbox unavailable"), Blame::Soft);
        // An address is not a word: this one bounces.
        assert_eq!(
            classify(
                e("5.1.1"),
                "550 5.1.1 <ops@dmarcian.example>: Recipient address rejected: User unknown"
            ),
            Blame::Recipient
        );
        // A date is not a status.
        assert_eq!(find_enhanced("away until 5.1.2027"), None);
    }

    #[test]
    fn codes_are_found_where_bounces_put_them() {
        assert_eq!(
            find_enhanced("Sorry, no mailbox here by that name. (#5.1.1)"),
            Some(Enhanced(5, 1, 1))
        );
        assert_eq!(find_enhanced("version 1.5.1.1 of"), None);
        assert_eq!(find_enhanced("at 12.5.2026"), None);
        assert_eq!(
            reply_code_in("Remote host said: 550 5.1.1 unknown"),
            Some("550 5.1.1 unknown")
        );
        assert_eq!(
            reply_code_in("554: delivery error"),
            Some("554: delivery error")
        );
        assert_eq!(reply_code_in("port 25500 is"), None);
    }

    #[test]
    fn no_input_panics_the_reader() {
        let inputs: Vec<Vec<u8>> = vec![
            vec![],
            b"\r\n\r\n".to_vec(),
            vec![0xff; 300],
            b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\nStatus: 5.\r\n--x--".to_vec(),
            b"From: MAILER-DAEMON@x\r\nSubject: failure notice\r\n\r\n550".to_vec(),
            b"Subject: unsubscribe \xe2\x80\x8b\r\n\r\nunsubscribe".to_vec(),
            "Subject: Re: Re:\r\n\r\n".into(),
            "Subject: re:\r\n\r\nä 5. 5.1 5.1. 4.4.4.4".into(),
        ];
        for input in inputs {
            let _ = read(&input);
        }
        assert_eq!(
            list_unsubscribe_token("List-Unsubscribe: <https://x/unsubscribe/>"),
            None
        );
        assert_eq!(herald_message_id("Message-ID: <herald.x.y@z>"), None);
        assert_eq!(
            herald_message_id("Message-ID: <herald.7.42@z>"),
            Some((7, 42))
        );
    }
}
