//! The nouns every stage shares: posts, their ids, and the state herald keeps per source.
//!
//! These types carry no I/O. Values are validated where they enter (config, ingest, HTTP)
//! so that code holding a [`StableId`] or a [`Post`] can trust it.

mod post;
mod source;

pub use post::{NewPost, Post, PostId, RelatedPost, StableId};
pub use source::{SourceId, SourceState};
