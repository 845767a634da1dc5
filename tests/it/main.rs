//! Integration tests, one binary: real SQLite files in temp dirs, feeds served over real
//! HTTP on 127.0.0.1, and the real `herald` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod archive;
mod bounces;
mod cli;
mod corpus;
mod digest;
mod dkim;
mod enrich;
mod feeds;
mod feeds_out;
mod fetch;
mod related_quality;
mod safety;
mod server;
mod spam;
mod support;
mod webhooks;
mod welcome;
mod world;

#[path = "../../benches/support/smtp_sink.rs"]
mod smtp_sink;
