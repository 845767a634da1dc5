//! Logging setup (`tracing` to stderr, filtered by `HERALD_LOG`, same syntax as
//! `RUST_LOG`), the shutdown signal, and the metrics counters served at `/metrics`.
//!
//! Levels mean what STYLE.md says: ERROR = data lost or an operator must act, WARN =
//! unexpected but recovered (a source failed, a message deferred), INFO = one line per
//! run or per source, DEBUG = per post or per message.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,herald=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact()
        .try_init();
}

/// Resolves at the first Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// How far a long piece of work is (a send, an import, a poll of many sources, an index
/// rebuild): the stages count here, cheaply; the command line draws it
/// (`app::progress`). One stage at a time.
#[derive(Debug, Default)]
pub struct Progress {
    stage: Mutex<String>,
    total: AtomicU64,
    done: AtomicU64,
    /// Bumped at every `start`, so that a drawer notices a new stage.
    generation: AtomicU64,
}

impl Progress {
    /// A new stage of `total` steps ("sending weekly #12", "importing").
    pub fn start(&self, stage: &str, total: u64) {
        if let Ok(mut s) = self.stage.lock() {
            *s = stage.to_owned();
        }
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` more steps done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// The stage's name, steps done and total, and its generation.
    pub fn snapshot(&self) -> (String, u64, u64, u64) {
        let stage = self.stage.lock().map(|s| s.clone()).unwrap_or_default();
        (
            stage,
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
            self.generation.load(Ordering::Relaxed),
        )
    }
}

/// Counters herald keeps while it runs, exposed at `/metrics` in the Prometheus text
/// format. Gauges that the store knows (posts, subscribers, deliveries by status) are
/// read from it at scrape time instead.
#[derive(Debug, Default)]
pub struct Metrics {
    pub polls: AtomicU64,
    pub posts_ingested: AtomicU64,
    /// Fetch errors by source name.
    pub fetch_errors: Mutex<BTreeMap<String, u64>>,
    pub poll_seconds: Timing,
    pub digest_seconds: Timing,
    pub messages_sent: AtomicU64,
}

/// A gauge for [`Metrics::render`]: name, help, and (labels, value) pairs.
pub type Gauge<'a> = (&'a str, &'a str, Vec<(String, f64)>);

/// How long something took, summed, and how often (rendered as a Prometheus summary
/// without quantiles).
#[derive(Debug, Default)]
pub struct Timing {
    micros: AtomicU64,
    count: AtomicU64,
}

impl Timing {
    pub fn observe(&self, seconds: f64) {
        self.micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let sum = self.micros.load(Ordering::Relaxed) as f64 / 1e6;
        let count = self.count.load(Ordering::Relaxed);
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} summary\n{name}_sum {sum}\n{name}_count {count}\n"
        ));
    }
}

impl Metrics {
    pub fn fetch_error(&self, source: &str) {
        if let Ok(mut errors) = self.fetch_errors.lock() {
            *errors.entry(source.to_owned()).or_default() += 1;
        }
    }

    /// The counters in the Prometheus text format; `gauges` are (name, help, [(labels, value)]).
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        };
        counter(
            &mut out,
            "herald_polls_total",
            "Source polls attempted.",
            self.polls.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "herald_posts_ingested_total",
            "New posts stored.",
            self.posts_ingested.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "herald_messages_sent_total",
            "Digest messages accepted by the mail server.",
            self.messages_sent.load(Ordering::Relaxed),
        );
        out.push_str("# HELP herald_fetch_errors_total Failed polls, by source.\n# TYPE herald_fetch_errors_total counter\n");
        if let Ok(errors) = self.fetch_errors.lock() {
            for (source, n) in errors.iter() {
                out.push_str(&format!(
                    "herald_fetch_errors_total{{source=\"{}\"}} {n}\n",
                    label(source)
                ));
            }
        }
        self.poll_seconds.write(
            &mut out,
            "herald_poll_duration_seconds",
            "Time to poll one source.",
        );
        self.digest_seconds.write(
            &mut out,
            "herald_digest_duration_seconds",
            "Time to send one digest issue.",
        );
        for (name, help, values) in gauges {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for (labels, value) in values {
                if labels.is_empty() {
                    out.push_str(&format!("{name} {value}\n"));
                } else {
                    out.push_str(&format!("{name}{{{labels}}} {value}\n"));
                }
            }
        }
        out
    }
}

/// A label value escaped for the Prometheus text format.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
