//! herald reads posts from RSS, Atom and JSON feeds, stores them, and publishes them again:
//! as periodic digest emails to confirmed subscribers and as an outgoing feed.
//!
//! The pipeline, in one paragraph: [`config`] turns one TOML file into a validated
//! [`config::Config`]; [`ingest`] fetches each source (conditional GET, size and time
//! limits), parses it with feed-rs and normalizes every entry into a [`domain::Post`]
//! (stable id, sanitized HTML with absolute URLs, plain text, lead image); [`store`] keeps
//! sources and posts in SQLite so a post seen once is never lost or duplicated;
//! [`enrich`] writes each post's summary and its related posts.
//! [`pipeline`] is the only module that chains the stages; [`app`] maps CLI commands onto
//! it. Wall time is read only through [`clock`].

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod domain;
pub mod enrich;
pub mod http;
pub mod ingest;
pub mod markup;
pub mod pipeline;
pub mod render;
pub mod schedule;
pub mod store;
pub mod telemetry;
