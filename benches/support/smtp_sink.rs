//! A small real SMTP server on 127.0.0.1 for tests and benchmarks, with faults on demand.
//!
//! It speaks enough ESMTP for lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps
//! every accepted message (or only counts them), and can misbehave: refuse connections
//! with 421, answer chosen recipients with 451 (a number of times) or 550, drop the
//! connection after a message's data instead of answering, advertise a SIZE and refuse
//! what is bigger, or refuse a message's content (too big, a line too long, anything).
//!
//! Shared by `tests/it` and `benches/digest.rs` via `#[path]`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

/// What the server does; change it while it runs.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Answer new connections with this line and close (e.g. "421 4.3.2 busy").
    pub refuse_connections: Option<String>,
    /// Recipients answered with a temporary error, and how many more times.
    pub defer_rcpt: HashMap<String, usize>,
    /// Recipients always answered with a permanent error.
    pub reject_rcpt: Vec<String>,
    /// Answer every MAIL FROM with this line (e.g. "550 5.7.1 Sender rejected").
    pub reject_sender: Option<String>,
    /// Recipients whose next message is cut off: the connection drops after the data,
    /// before the reply (then the entry is removed).
    pub drop_after_data: Vec<String>,
    /// The SIZE advertised in EHLO (default 52428800; `Some(0)` advertises none). A
    /// message over it is refused with 552 5.3.4 after its data.
    pub size_limit: Option<usize>,
    /// Refuse messages over this many bytes with "552 Message size exceeds fixed
    /// limit" (no enhanced code), whatever SIZE says.
    pub refuse_over: Option<usize>,
    /// Refuse messages with a line longer than this with "500 Line too long".
    pub max_line: Option<usize>,
    /// Answer every message's data with this line (e.g. "554 Transaction failed").
    pub reject_content: Option<String>,
}

/// The running server.
#[derive(Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    pub behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
    keep: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl SmtpSink {
    /// Starts a server that keeps every message.
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// Starts a server; `keep = false` only counts messages (for benchmarks).
    pub async fn start_with(keep: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let sink = Self {
            addr: listener.local_addr().expect("local addr"),
            behaviour: Arc::default(),
            received: Arc::default(),
            keep: Arc::new(AtomicBool::new(keep)),
            accepted: Arc::default(),
            connections: Arc::default(),
        };
        let server = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                server.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = server.session(stream).await;
                });
            }
        });
        sink
    }

    /// `smtp://127.0.0.1:PORT` for herald's config (with `tls = "none"`).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    async fn session(&self, stream: TcpStream) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::with_capacity(64 * 1024, read);
        let refuse = self.behaviour.lock().unwrap().refuse_connections.clone();
        if let Some(line) = refuse {
            write.write_all(format!("{line}\r\n").as_bytes()).await?;
            return Ok(());
        }
        write
            .write_all(b"220 sink.test ESMTP herald test sink\r\n")
            .await?;
        let mut line = String::new();
        let mut mail_from = String::new();
        let mut rcpt_to: Vec<String> = Vec::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let upper = command.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                let size = self
                    .behaviour
                    .lock()
                    .unwrap()
                    .size_limit
                    .unwrap_or(52_428_800);
                let size = if size == 0 {
                    String::new()
                } else {
                    format!("250-SIZE {size}\r\n")
                };
                write
                    .write_all(
                        format!("250-sink.test\r\n250-8BITMIME\r\n{size}250 SMTPUTF8\r\n")
                            .as_bytes(),
                    )
                    .await?;
            } else if upper.starts_with("HELO") {
                write.write_all(b"250 sink.test\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                let reject = self.behaviour.lock().unwrap().reject_sender.clone();
                if let Some(line) = reject {
                    write.write_all(format!("{line}\r\n").as_bytes()).await?;
                    continue;
                }
                mail_from = address_in(&command);
                rcpt_to.clear();
                write.write_all(b"250 2.1.0 Ok\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                let rcpt = address_in(&command);
                let reply = {
                    let mut b = self.behaviour.lock().unwrap();
                    if b.reject_rcpt.iter().any(|r| r.eq_ignore_ascii_case(&rcpt)) {
                        Some("550 5.1.1 No such user here".to_owned())
                    } else if let Some(n) = b
                        .defer_rcpt
                        .get_mut(&rcpt.to_lowercase())
                        .filter(|n| **n > 0)
                    {
                        *n -= 1;
                        Some("451 4.7.1 Greylisted, try again later".to_owned())
                    } else {
                        None
                    }
                };
                match reply {
                    Some(reply) => write.write_all(format!("{reply}\r\n").as_bytes()).await?,
                    None => {
                        rcpt_to.push(rcpt);
                        write.write_all(b"250 2.1.5 Ok\r\n").await?;
                    }
                }
            } else if upper == "DATA" {
                if rcpt_to.is_empty() {
                    write
                        .write_all(b"503 5.5.1 No valid recipients\r\n")
                        .await?;
                    continue;
                }
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = read_data(&mut reader).await?;
                let cut = {
                    let mut b = self.behaviour.lock().unwrap();
                    let before = b.drop_after_data.len();
                    b.drop_after_data
                        .retain(|r| !rcpt_to.iter().any(|t| t.eq_ignore_ascii_case(r)));
                    b.drop_after_data.len() != before
                };
                if cut {
                    return Ok(()); // the connection drops: no reply, nothing accepted
                }
                let refusal = {
                    let b = self.behaviour.lock().unwrap();
                    let longest = data
                        .split(|c| *c == b'\n')
                        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).len())
                        .max()
                        .unwrap_or(0);
                    if let Some(line) = b.reject_content.clone() {
                        Some(line)
                    } else if b.size_limit.is_some_and(|s| s > 0 && data.len() > s) {
                        Some("552 5.3.4 Message size exceeds fixed maximum message size".to_owned())
                    } else if b.refuse_over.is_some_and(|s| data.len() > s) {
                        Some("552 Message size exceeds fixed limit".to_owned())
                    } else if b.max_line.is_some_and(|m| longest > m) {
                        Some("500 Line too long".to_owned())
                    } else {
                        None
                    }
                };
                if let Some(line) = refusal {
                    rcpt_to.clear();
                    write.write_all(format!("{line}\r\n").as_bytes()).await?;
                    continue;
                }
                let n = self.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                if self.keep.load(Ordering::Relaxed) {
                    self.received.lock().unwrap().push(Received {
                        mail_from: mail_from.clone(),
                        rcpt_to: std::mem::take(&mut rcpt_to),
                        data,
                    });
                } else {
                    rcpt_to.clear();
                }
                write
                    .write_all(format!("250 2.0.0 Ok: queued as {n}\r\n").as_bytes())
                    .await?;
            } else if upper == "RSET" {
                mail_from.clear();
                rcpt_to.clear();
                write.write_all(b"250 2.0.0 Ok\r\n").await?;
            } else if upper == "NOOP" {
                write.write_all(b"250 2.0.0 Ok\r\n").await?;
            } else if upper == "QUIT" {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            } else {
                write
                    .write_all(b"502 5.5.2 Command not recognized\r\n")
                    .await?;
            }
        }
    }
}

/// The address inside `<…>` of a MAIL or RCPT command.
fn address_in(command: &str) -> String {
    match (command.find('<'), command.find('>')) {
        (Some(open), Some(close)) if close > open => command[open + 1..close].to_owned(),
        _ => String::new(),
    }
}

/// Reads message data up to the lone dot, undoing dot-stuffing.
async fn read_data<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(32 * 1024);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let start = usize::from(line.starts_with(b".."));
        data.extend_from_slice(&line[start..]);
    }
}
