//! Digest delivery and the list at scale, through the real `herald` binary: N confirmed
//! subscribers (default 100,000; `HERALD_BENCH_SUBSCRIBERS=1000000` for the million) are
//! imported, listed, exported, one is removed, and a 10-post personalised digest goes
//! to all of them through an SMTP sink on loopback. Beside herald's send, a plain SMTP
//! client (16 connections, TCP_NODELAY, one write per message) pushes the same message
//! bytes to the same sink: the sink's ceiling on this machine. Then STARTTLS and
//! `smtps://` are measured against a TLS-speaking sink (a test CA through
//! `smtp.ca_file`), with `HERALD_BENCH_TLS_SUBSCRIBERS` (default 20,000) each, and the
//! send unsigned, DKIM-signed with Ed25519 and with RSA-2048
//! (`HERALD_BENCH_DKIM_SUBSCRIBERS`, default 20,000). Every send has a bounce address,
//! so each message's envelope sender is its signed VERP address, as for an operator
//! who reads bounces.
//!
//! Reports rows/s, seconds and peak RSS (sampled from /proc) for each step.
//! Targets: import ≥ 100,000 rows/s; list and export streamed (flat RSS); remove under
//! 10 ms; the send at the plain client's rate in under 57 MB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/smtp_sink.rs"]
mod smtp_sink;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use smtp_sink::{SinkTls, SmtpSink};

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn main() {
    let subscribers = count("HERALD_BENCH_SUBSCRIBERS", 100_000);
    let tls_subscribers = count("HERALD_BENCH_TLS_SUBSCRIBERS", 20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "machine: {} cores; {subscribers} subscribers",
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    let sink = runtime.block_on(SmtpSink::start_with(false));
    let bench = Bench::new(&sink, "tls = \"none\"\n", subscribers);
    let (wall, peak) = bench.run(
        &["subscribers", "import", "subscribers.csv", "--confirmed"],
        None,
    );
    println!(
        "import: {subscribers} rows in {:.2} s: {:.0} rows/s; peak RSS {} MB",
        wall.as_secs_f64(),
        subscribers as f64 / wall.as_secs_f64(),
        peak / 1024
    );
    let (wall, peak) = bench.run(&["subscribers", "list", "--json"], Some("list.json"));
    println!(
        "list --json: {subscribers} subscribers in {:.2} s ({:.0} MB written); peak RSS {} MB",
        wall.as_secs_f64(),
        file_mb(&bench.root.join("list.json")),
        peak / 1024
    );
    let (wall, peak) = bench.run(&["subscribers", "export"], Some("export.csv"));
    println!(
        "export: {subscribers} subscribers in {:.2} s ({:.0} MB written); peak RSS {} MB",
        wall.as_secs_f64(),
        file_mb(&bench.root.join("export.csv")),
        peak / 1024
    );
    let (wall, _) = bench.run(
        &[
            "subscribers",
            "remove",
            &format!("reader{}@example.org", subscribers / 2),
        ],
        None,
    );
    let removals = runtime.block_on(remove_in_process(&bench.root, subscribers));
    println!(
        "remove one: {:.1} ms for the whole command; the store's removal {:.2}–{:.2} ms over {} addresses",
        wall.as_secs_f64() * 1000.0,
        removals.first().unwrap().as_secs_f64() * 1000.0,
        removals.last().unwrap().as_secs_f64() * 1000.0,
        removals.len()
    );
    let remaining = subscribers - 1 - removals.len();
    let herald_rate = bench.send(&sink, remaining, "plain");
    let message = sink.first_message().expect("a message was accepted");
    let before = sink.accepted();
    let started = Instant::now();
    plain_client(sink.addr, &message, remaining, 16);
    let plain = started.elapsed();
    assert_eq!(sink.accepted() - before, remaining);
    let plain_rate = remaining as f64 / plain.as_secs_f64();
    println!(
        "plain SMTP client: the same {} KB message {remaining} times in {:.2} s: {plain_rate:.0} messages/s; herald/plain = {:.2}",
        message.len() / 1024,
        plain.as_secs_f64(),
        herald_rate / plain_rate
    );
    drop(bench);

    let mut rates = Vec::new();
    for (mode, label) in [
        (SinkTls::StartTls, "STARTTLS"),
        (SinkTls::Implicit, "smtps://"),
    ] {
        let sink = runtime.block_on(SmtpSink::start_tls(false, mode));
        let tls = if mode == SinkTls::StartTls {
            "tls = \"required\"\n"
        } else {
            ""
        };
        let bench = Bench::new(&sink, tls, tls_subscribers);
        bench.run(
            &["subscribers", "import", "subscribers.csv", "--confirmed"],
            None,
        );
        rates.push(bench.send(&sink, tls_subscribers, label));
    }
    println!("smtps:// / STARTTLS = {:.2}", rates[1] / rates[0]);

    // DKIM: the same send unsigned, then signed with each algorithm, on one plain sink.
    let dkim_subscribers = count("HERALD_BENCH_DKIM_SUBSCRIBERS", 20_000);
    let sink = runtime.block_on(SmtpSink::start_with(false));
    let mut rates = Vec::new();
    for (algorithm, label) in [
        (None, "unsigned"),
        (Some("ed25519-sha256"), "DKIM Ed25519"),
        (Some("rsa-sha256"), "DKIM RSA-2048"),
    ] {
        let bench = Bench::with_dkim(&sink, "tls = \"none\"\n", dkim_subscribers, algorithm);
        bench.run(
            &["subscribers", "import", "subscribers.csv", "--confirmed"],
            None,
        );
        rates.push(bench.send(&sink, dkim_subscribers, label));
    }
    println!(
        "DKIM / unsigned: Ed25519 {:.2}, RSA-2048 {:.2}",
        rates[1] / rates[0],
        rates[2] / rates[0]
    );
}

/// A herald install in a temp dir: config, a polled 10-post feed, a subscriber file.
struct Bench {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Bench {
    fn new(sink: &SmtpSink, tls: &str, subscribers: usize) -> Self {
        Self::with_dkim(sink, tls, subscribers, None)
    }

    /// [`Bench::new`], signing with a new DKIM key of `algorithm` when given.
    fn with_dkim(sink: &SmtpSink, tls: &str, subscribers: usize, algorithm: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let dkim = match algorithm {
            Some(algorithm) => {
                let keygen = Command::new(env!("CARGO_BIN_EXE_herald"))
                    .args([
                        "dkim",
                        "keygen",
                        "--selector",
                        "bench",
                        "--domain",
                        "example.org",
                    ])
                    .args(["--algorithm", algorithm, "--out", "dkim.pem"])
                    .current_dir(&root)
                    .output()
                    .unwrap();
                assert!(
                    keygen.status.success(),
                    "{}",
                    String::from_utf8_lossy(&keygen.stderr)
                );
                format!(
                    "[smtp.dkim]\ndomain = \"example.org\"\nselector = \"bench\"\nalgorithm = \"{algorithm}\"\nprivate_key = \"dkim.pem\"\n"
                )
            }
            None => String::new(),
        };
        std::fs::write(root.join("feed.xml"), feed(10)).unwrap();
        let ca = if sink.ca_pem().is_some() {
            "ca_file = \"ca.pem\"\n"
        } else {
            ""
        };
        let config = format!(
            "[site]\ntitle = \"Bench Notes\"\nbase_url = \"https://news.example.org/\"\n\
             [[sources]]\nname = \"bench\"\nurl = \"feed.xml\"\n\
             [smtp]\nurl = \"{}\"\n{tls}{ca}from = \"Bench Notes <news@example.org>\"\nbounce_address = \"bounces@example.org\"\nrate = 100000\nmax_connections = 16\n{dkim}\
             [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\nmax_posts = 10\n",
            sink.url()
        );
        std::fs::write(root.join("herald.toml"), config).unwrap();
        if let Some(pem) = sink.ca_pem() {
            std::fs::write(root.join("ca.pem"), pem).unwrap();
        }
        let bench = Self { _dir: dir, root };
        bench.run(&["poll"], None);
        let mut csv = std::io::BufWriter::new(
            std::fs::File::create(bench.root.join("subscribers.csv")).unwrap(),
        );
        writeln!(csv, "email,name,digests").unwrap();
        for i in 0..subscribers {
            writeln!(csv, "reader{i}@example.org,Reader {i},weekly").unwrap();
        }
        drop(csv);
        bench
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("--config")
            .arg(self.root.join("herald.toml"))
            .args(args)
            .current_dir(&self.root)
            .env(
                "HERALD_SECRET",
                "bench-secret-bench-secret-bench-secret-0123",
            )
            .env("HERALD_LOG", "warn");
        cmd
    }

    /// Runs herald to completion (stdout to `out` in the root, else discarded): wall
    /// time and peak RSS in KB.
    fn run(&self, args: &[&str], out: Option<&str>) -> (Duration, u64) {
        let mut cmd = self.command(args);
        cmd.stdout(match out {
            Some(name) => Stdio::from(std::fs::File::create(self.root.join(name)).unwrap()),
            None => Stdio::null(),
        });
        let (wall, peak, output) = measure(cmd);
        assert!(
            output.status.success(),
            "herald {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        (wall, peak)
    }

    /// `digest send` to everyone: messages per second while sending.
    fn send(&self, sink: &SmtpSink, expected: usize, label: &str) -> f64 {
        let before = sink.accepted();
        let mut cmd = self.command(&["digest", "send", "weekly", "--force", "--no-poll"]);
        cmd.env("HERALD_LOG", "herald=info").stdout(Stdio::piped());
        let (wall, peak_kb, output) = measure(cmd);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let send_seconds: f64 = stderr
            .lines()
            .find(|l| l.contains("issue sent"))
            .and_then(|l| l.split("seconds=").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(wall.as_secs_f64());
        assert_eq!(
            sink.accepted() - before,
            expected,
            "every subscriber got one message"
        );
        let rate = expected as f64 / send_seconds;
        println!(
            "digest send ({label}): {expected} messages (10 posts each) in {send_seconds:.2} s sending ({:.2} s for the whole command): {rate:.0} messages/s; peak RSS {} MB",
            wall.as_secs_f64(),
            peak_kb / 1024
        );
        rate
    }
}

/// Runs `cmd`, sampling its peak RSS: (wall, peak KB, output).
fn measure(mut cmd: Command) -> (Duration, u64, std::process::Output) {
    let started = Instant::now();
    let child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut peak_kb = 0;
    let output = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| child.wait_with_output().unwrap());
        while !waiter.is_finished() {
            peak_kb = peak_kb.max(vm_hwm_kb(pid));
            std::thread::sleep(Duration::from_millis(10));
        }
        waiter.join().unwrap()
    });
    (started.elapsed(), peak_kb, output)
}

fn file_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}

/// Removes a few subscribers through the store itself (what `subscribers remove` and
/// a deletion from the preferences page run): each removal's time, sorted.
async fn remove_in_process(root: &Path, subscribers: usize) -> Vec<Duration> {
    let url = herald::config::StoreUrl::Sqlite(root.join("data/herald.db"));
    let store = herald::store::Store::open(&url).await.unwrap();
    let mut times = Vec::new();
    for k in 1..=9 {
        let email = herald::domain::SubscriberEmail::parse(&format!(
            "reader{}@example.org",
            subscribers * k / 10 + 1
        ))
        .unwrap();
        let started = Instant::now();
        assert!(store.remove_subscriber(&email).await.unwrap());
        times.push(started.elapsed());
    }
    store.close().await;
    times.sort();
    times
}

/// A plain SMTP client: `connections` sessions, each EHLO once and then MAIL, RCPT,
/// DATA and the message in one write, a reply read after each, until `total` are sent.
fn plain_client(addr: std::net::SocketAddr, message: &[u8], total: usize, connections: usize) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stuffed = Vec::with_capacity(message.len() + 64);
    for line in message.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    if !stuffed.ends_with(b"\r\n") {
        stuffed.extend_from_slice(b"\r\n");
    }
    stuffed.extend_from_slice(b".\r\n");
    let stuffed = std::sync::Arc::new(stuffed);
    let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(total));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let stuffed = std::sync::Arc::clone(&stuffed);
            let left = std::sync::Arc::clone(&left);
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut conn = BufReader::new(stream);
                let mut line = String::new();
                async fn reply(conn: &mut BufReader<tokio::net::TcpStream>, line: &mut String) {
                    loop {
                        line.clear();
                        conn.read_line(line).await.unwrap();
                        assert!(
                            matches!(line.as_bytes().first(), Some(b'2' | b'3')),
                            "{line}"
                        );
                        if line.as_bytes().get(3) != Some(&b'-') {
                            return;
                        }
                    }
                }
                reply(&mut conn, &mut line).await;
                conn.write_all(b"EHLO plain.client\r\n").await.unwrap();
                reply(&mut conn, &mut line).await;
                let mut i = 0usize;
                while left
                    .fetch_update(
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                        |n| n.checked_sub(1),
                    )
                    .is_ok()
                {
                    i += 1;
                    conn.write_all(b"MAIL FROM:<news@example.org>\r\n")
                        .await
                        .unwrap();
                    reply(&mut conn, &mut line).await;
                    conn.write_all(format!("RCPT TO:<plain{i}@example.org>\r\n").as_bytes())
                        .await
                        .unwrap();
                    reply(&mut conn, &mut line).await;
                    conn.write_all(b"DATA\r\n").await.unwrap();
                    reply(&mut conn, &mut line).await;
                    conn.write_all(&stuffed).await.unwrap();
                    reply(&mut conn, &mut line).await;
                }
                let _ = conn.write_all(b"QUIT\r\n").await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A feed of `n` posts with realistic bodies, so summaries and related posts are real.
fn feed(n: usize) -> String {
    let topics = [
        (
            "sourdough",
            "starter flour water dough oven crust proof bake loaf",
        ),
        (
            "cycling",
            "chain tyre brake wheel gear saddle pump ride derailleur",
        ),
        (
            "garden",
            "soil compost seed frost mulch harvest bed garlic leaves",
        ),
        (
            "network",
            "router switch vlan dns dhcp firewall cable wifi subnet",
        ),
    ];
    let mut items = String::new();
    for i in 0..n {
        let (topic, words) = topics[i % topics.len()];
        let words: Vec<&str> = words.split(' ').collect();
        let mut body = String::new();
        for p in 0..5 {
            body.push_str("<p>");
            for s in 0..4 {
                let w = |k: usize| words[(i + p + s + k) % words.len()];
                body.push_str(&format!(
                    "The {} and the {} matter more than the {} for anyone who cares about {}. ",
                    w(0),
                    w(3),
                    w(5),
                    topic
                ));
            }
            body.push_str("</p>");
        }
        items.push_str(&format!(
            "<item><title>Notes on {topic}, part {i}</title><link>https://blog.example.org/{topic}/{i}</link>\
             <guid>https://blog.example.org/{topic}/{i}</guid><pubDate>Mon, {:02} Nov 2026 10:00:00 +0000</pubDate>\
             <category>{topic}</category><description><![CDATA[{body}<img src=\"/img/{i}.jpg\" alt=\"\">]]></description></item>",
            1 + i
        ));
    }
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Bench</title><link>https://blog.example.org/</link>{items}</channel></rss>"
    )
}
