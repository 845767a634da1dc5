//! The daemon: idle memory and CPU, and the outgoing feed over HTTP on loopback.
//!
//! `cargo bench --bench http` starts the real `herald serve` on the example blog, lets
//! it sit idle (RSS, CPU time used), then runs a keep-alive load generator (64
//! connections, raw HTTP/1.1 so that the client costs little) against `/feed.xml`:
//! conditional GETs that must be answered 304 with no body, then full GETs. Targets: idle
//! under 30 MB RSS and no busy polling; at least 20,000 requests/s for the 304s. The load
//! generator runs on one thread of the same two-core machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::copy(
        root.join("config/herald.toml"),
        dir.path().join("config/herald.toml"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("examples/blog")).unwrap();
    std::fs::copy(
        root.join("examples/blog/feed.xml"),
        dir.path().join("examples/blog/feed.xml"),
    )
    .unwrap();
    let herald = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.current_dir(dir.path()).env("HERALD_SECRET", "bench");
        cmd
    };
    assert!(
        herald()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    );

    let mut serve = herald()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("HERALD_LOG", "herald=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = serve.id();
    let mut lines = BufReader::new(serve.stderr.take().unwrap()).lines();
    let addr: String = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {}); // keep draining its log

    // Idle: let the first tick finish, then watch for ten seconds.
    std::thread::sleep(Duration::from_secs(3));
    let cpu_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(10));
    let cpu_ticks_idle = cpu_ticks(pid) - cpu_before;
    println!(
        "idle: {} MB RSS; {} ms of CPU in 10 s ({:.2}% of a core)",
        status_kb(pid, "VmRSS") / 1024,
        cpu_ticks_idle * 10,
        // 100 ticks a second: over 10 s, each tick is 0.1% of a core.
        cpu_ticks_idle as f64 / 10.0
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etag = runtime.block_on(etag_of(&addr));
    for (label, conditional) in [
        ("conditional GET (304, no body)", true),
        ("full GET (200, whole feed)", false),
    ] {
        let (requests, seconds) =
            runtime.block_on(load(&addr, &etag, conditional, Duration::from_secs(5)));
        println!(
            "{label}: {requests} requests in {seconds:.1} s: {:.0} req/s",
            requests as f64 / seconds
        );
    }
    println!(
        "after load: {} MB RSS, peak {} MB",
        status_kb(pid, "VmRSS") / 1024,
        status_kb(pid, "VmHWM") / 1024
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = serve.wait();
}

async fn etag_of(addr: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /feed.xml HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .trim()
        .to_owned()
}

/// Keep-alive clients hammering /feed.xml; returns (responses, seconds).
async fn load(addr: &str, etag: &str, conditional: bool, length: Duration) -> (u64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let request = if conditional {
        format!("GET /feed.xml HTTP/1.1\r\nHost: bench\r\nIf-None-Match: {etag}\r\n\r\n")
    } else {
        "GET /feed.xml HTTP/1.1\r\nHost: bench\r\n\r\n".to_owned()
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (done, stop, request, addr) = (
            Arc::clone(&done),
            Arc::clone(&stop),
            request.clone(),
            addr.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut pending: Vec<u8> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                stream.write_all(request.as_bytes()).await.unwrap();
                // Read one response: headers, then Content-Length bytes of body.
                loop {
                    if let Some(end) = find(&pending, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                        assert!(
                            head.starts_with(if conditional {
                                "http/1.1 304"
                            } else {
                                "http/1.1 200"
                            }),
                            "{head}"
                        );
                        let body: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |n| n.trim().parse().unwrap());
                        if pending.len() >= end + 4 + body {
                            pending.drain(..end + 4 + body);
                            break;
                        }
                    }
                    let n = stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "connection closed");
                    pending.extend_from_slice(&buf[..n]);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let count = done.load(Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (count, seconds)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is 0, utime is 11, stime is 12.
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}
