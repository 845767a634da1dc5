//! herald reads posts from RSS, Atom and JSON feeds, stores them, and publishes them again:
//! as periodic digest emails to confirmed subscribers and as an outgoing feed.
//!
//! The pipeline, in one paragraph: [`config`] turns one TOML file into a validated
//! [`config::Config`]; [`ingest`] fetches each source (conditional GET, size and time
//! limits), parses it with feed-rs and normalizes every entry into a [`domain::Post`]
//! (stable id, sanitized HTML with absolute URLs, plain text, lead image); [`store`] keeps
//! sources, posts, subscribers and the delivery ledger in SQLite so a post seen once is
//! never lost or duplicated and a digest never sent twice; [`enrich`] writes each post's
//! summary and its related posts; [`render`] turns posts into digest emails and the
//! outgoing feeds; [`deliver`] builds each message and hands it to the relay, recording
//! the outcome in the ledger; [`schedule`] says when a digest is due in its time zone;
//! [`http`] serves the feeds and the subscription pages. [`pipeline`] is the only module
//! that chains the stages; [`app`] maps the commands of [`cli`] onto it.
//! [`domain`] holds the nouns every stage shares, [`markup`] the HTML and text helpers,
//! [`telemetry`] logging, metrics and progress. Wall time is read only through [`clock`].
//!
//! Imports point one way, lowest layer first: `domain`, `markup`, `clock`, `config`,
//! `telemetry` → `store` → `ingest`, `enrich`, `render`, `schedule` → `deliver` (may use
//! `render`) → `http` (may use `render`) → `pipeline` → `app`, `cli`, `main`.

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
