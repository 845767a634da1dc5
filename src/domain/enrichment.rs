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
    pub terms: Vec<(String, u32)>,
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
    pub terms: Vec<(String, u32)>,
}

/// Encodes weighted terms for the store: `stem count stem count …`.
pub fn encode_terms(terms: &[(String, u32)]) -> String {
    let mut out = String::with_capacity(terms.len() * 10);
    for (i, (term, count)) in terms.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(term);
        out.push(' ');
        out.push_str(&count.to_string());
    }
    out
}

/// Decodes [`encode_terms`]; malformed pairs are skipped.
pub fn decode_terms(s: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut parts = s.split(' ');
    while let (Some(term), Some(count)) = (parts.next(), parts.next()) {
        if let Ok(count) = count.parse() {
            out.push((term.to_owned(), count));
        }
    }
    out
}
