//! Digest delivery: 100,000 confirmed subscribers, a 10-post personalised digest, sent by
//! the real `herald` binary to an SMTP sink on loopback. Reports messages per second and
//! the sender's peak RSS (sampled from /proc while it runs).
//!
//! `cargo bench --bench digest` (set `HERALD_BENCH_SUBSCRIBERS` for another size). The
//! sender uses 16 connections; the sink runs in this process, on the same two cores.
//! Targets: at least 5,000 messages/s and under 150 MB peak RSS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/smtp_sink.rs"]
mod smtp_sink;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let subscribers: usize = std::env::var("HERALD_BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sink = runtime.block_on(smtp_sink::SmtpSink::start_with(false));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    std::fs::write(root.join("feed.xml"), feed(10)).unwrap();
    let config = format!(
        "[site]\ntitle = \"Bench Notes\"\nbase_url = \"https://news.example.org/\"\n\
         [[sources]]\nname = \"bench\"\nurl = \"feed.xml\"\n\
         [smtp]\nurl = \"{}\"\ntls = \"none\"\nfrom = \"Bench Notes <news@example.org>\"\nrate = 100000\nmax_connections = 16\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\nmax_posts = 10\n",
        sink.url()
    );
    std::fs::write(root.join("herald.toml"), config).unwrap();
    let herald = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("--config")
            .arg(root.join("herald.toml"))
            .args(args)
            .current_dir(root)
            .env("HERALD_SECRET", "bench-secret");
        cmd
    };
    let out = herald(&["poll"])
        .env("HERALD_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut csv =
        std::io::BufWriter::new(std::fs::File::create(root.join("subscribers.csv")).unwrap());
    writeln!(csv, "email,name,digests").unwrap();
    for i in 0..subscribers {
        writeln!(csv, "reader{i}@example.org,Reader {i},weekly").unwrap();
    }
    drop(csv);
    let started = Instant::now();
    let out = herald(&["subscribers", "import", "subscribers.csv", "--confirmed"])
        .env("HERALD_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "import: {subscribers} subscribers in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let child = herald(&["digest", "send", "weekly", "--force", "--no-poll"])
        .env("HERALD_LOG", "herald=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kb = 0;
    let output = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| child.wait_with_output().unwrap());
        while !waiter.is_finished() {
            peak_kb = peak_kb.max(vm_hwm_kb(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        waiter.join().unwrap()
    });
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let send_seconds: f64 = stderr
        .lines()
        .find(|l| l.contains("issue sent"))
        .and_then(|l| l.split("seconds=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(wall.as_secs_f64());
    let accepted = sink.accepted();
    assert_eq!(accepted, subscribers, "every subscriber got one message");
    println!(
        "digest send: {subscribers} messages (10 posts each) in {send_seconds:.2} s sending ({:.2} s for the whole command): {:.0} messages/s; peak RSS {} MB",
        wall.as_secs_f64(),
        subscribers as f64 / send_seconds,
        peak_kb / 1024
    );
    println!(
        "{}",
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.starts_with("this run") || l.starts_with("ledger"))
            .collect::<Vec<_>>()
            .join("\n")
    );
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
