//! The nouns every stage shares: posts, sources, subscribers, issues and deliveries, and
//! the signed tokens in links.
//!
//! These types carry no I/O. Values are validated where they enter (config, ingest, HTTP)
//! so that code holding a [`StableId`] or a [`Post`] can trust it.

mod enrichment;
mod issue;
mod post;
mod source;
mod subscriber;
pub mod token;
pub mod verp;

pub use enrichment::{Enriched, IndexDoc, PostSummary, SummarySource, Terms};
pub use issue::{DeliveryStatus, Issue, IssueId, IssueStatus};
pub(crate) use post::hex;
pub use post::{NewPost, Post, PostId, RelatedPost, StableId};
pub use source::{FeedMeta, SourceId, SourceState};
pub use subscriber::{
    NAME_MAX_CHARS, Subscriber, SubscriberEmail, SubscriberId, SubscriberName, SubscriberStatus,
    shorten,
};
