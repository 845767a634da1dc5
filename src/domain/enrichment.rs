//! What enrichment computes for a post, in the shape the store keeps it: the summary and
//! its origin, the weighted index terms, and what the related-posts index reads back.

use super::PostId;

/// Where a summary came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SummarySource {
    /// The feed's own summary.
    Feed,
    /// Sentences chosen from the post.
    Extract,
    /// The post is short enough to be its own summary.
    Whole,
}

impl SummarySource {
    pub fn as_str(self) -> &'static str {
        match self {
            SummarySource::Feed => "feed",
            SummarySource::Extract => "extract",
            SummarySource::Whole => "whole",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "feed" => Some(Self::Feed),
            "extract" => Some(Self::Extract),
            "whole" => Some(Self::Whole),
            _ => None,
        }
    }
}

/// A post's summary and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostSummary {
    pub text: String,
    pub source: SummarySource,
}

/// What enrichment computed for one post.
#[derive(Debug, Clone)]
pub struct Enriched {
    pub id: PostId,
    pub summary: PostSummary,
    pub terms: Terms,
}

/// What the related-posts index needs to know about a post (stored, so that the index is
/// rebuilt without re-reading any text).
#[derive(Debug, Clone)]
pub struct IndexDoc {
    pub id: i64,
    /// Orders posts in time: (published or first-seen, in ms; id as the tie-breaker).
    pub date: (i64, i64),
    pub url: Option<String>,
    pub tags: Vec<String>,
    /// Weighted term counts.
    pub terms: Terms,
}

/// A post's weighted index terms in the form the store keeps them: `stem count stem
/// count …`, each stem once, in the order the post first uses it (title, tags, body).
///
/// One string per post rather than a string per term: a long post has hundreds of terms,
/// and a rebuild of the related index reads every post's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms(String);

impl Terms {
    /// Terms as the store holds them; malformed pairs are skipped when read.
    pub fn from_encoded(encoded: String) -> Self {
        Self(encoded)
    }

    /// Terms from (stem, count) pairs; a stem holds no white space (it is one word).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut out = String::new();
        for (term, count) in pairs {
            out.push_str(term);
            out.push(' ');
            push_count(&mut out, count);
            out.push(' ');
        }
        out.pop();
        Self(out)
    }

    /// The stored form.
    pub fn encoded(&self) -> &str {
        &self.0
    }

    /// (stem, count) pairs, in order. Read byte by byte: a rebuild of the related index
    /// reads millions of them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        let text = self.0.as_str();
        let bytes = text.as_bytes();
        let mut i = 0;
        std::iter::from_fn(move || {
            while i < bytes.len() {
                let start = i;
                while i < bytes.len() && bytes[i] != b' ' {
                    i += 1;
                }
                let term = &text[start..i];
                i += 1;
                let digits = i;
                let mut count: u64 = 0;
                let mut valid = true;
                while i < bytes.len() && bytes[i] != b' ' {
                    valid &= bytes[i].is_ascii_digit();
                    count = (count * 10 + u64::from(bytes[i].wrapping_sub(b'0'))).min(1 << 40);
                    i += 1;
                }
                if digits >= bytes.len() {
                    return None; // a stem without its count
                }
                i += 1;
                if valid && i - 1 > digits && count <= u64::from(u32::MAX) {
                    return Some((term, count as u32));
                }
            }
            None
        })
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Appends `n` in decimal, without the formatting machinery (it runs for every term).
fn push_count(out: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[at..] {
        out.push(char::from(*d));
    }
}
