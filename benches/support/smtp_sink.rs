//! A small real SMTP server on 127.0.0.1 for tests and benchmarks, with faults on demand.
//!
//! It speaks enough ESMTP for lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps
//! every accepted message (or only counts them), and can misbehave: refuse connections
//! with 421, answer chosen recipients with 451 (a number of times) or 550, drop the
//! connection after a message's data instead of answering, advertise a SIZE and refuse
//! what is bigger, or refuse a message's content (too big, a line too long, anything).
//!
//! It can also speak TLS, with a certificate for 127.0.0.1 and localhost signed by a
//! test CA made when it starts (`ca_pem`, for herald's `smtp.ca_file`): implicit TLS
//! from the first byte (`smtps://`) or STARTTLS.
//!
//! Shared by `tests/it` and `benches/digest.rs` via `#[path]`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

/// TLS the sink speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain text (`smtp://`, `tls = "none"`).
    None,
    /// TLS from the first byte (`smtps://`).
    Implicit,
    /// STARTTLS offered in EHLO (`smtp://`, `tls = "required"`).
    StartTls,
}

/// The sink's certificate and its test CA.
struct Certificates {
    ca_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl Certificates {
    fn make() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "herald test sink CA");
        let ca_cert = ca.self_signed(&ca_key).expect("the CA certificate");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().expect("a key");
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("leaf params")
                .signed_by(&key, &issuer)
                .expect("the sink's certificate");
        let chain = vec![leaf.der().clone(), ca_cert.der().clone()];
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the server config");
        Self {
            ca_pem: ca_cert.pem(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// What a conversation ended with: the client left, or asked for STARTTLS.
enum Ended<S> {
    Closed,
    StartTls(S),
}

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
    tls: SinkTls,
    certificates: Option<Arc<Certificates>>,
    first: Arc<Mutex<Option<Vec<u8>>>>,
}

impl SmtpSink {
    /// Starts a server that keeps every message.
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// Starts a server; `keep = false` only counts messages (for benchmarks).
    pub async fn start_with(keep: bool) -> Self {
        Self::start_tls(keep, SinkTls::None).await
    }

    /// Starts a server speaking `tls`.
    pub async fn start_tls(keep: bool, tls: SinkTls) -> Self {
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
            tls,
            certificates: (tls != SinkTls::None).then(|| Arc::new(Certificates::make())),
            first: Arc::default(),
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

    /// `smtp://127.0.0.1:PORT` for herald's config (with `tls = "none"`, or
    /// `"required"` for STARTTLS), `smtps://…` for implicit TLS.
    pub fn url(&self) -> String {
        match self.tls {
            SinkTls::Implicit => format!("smtps://{}", self.addr),
            _ => format!("smtp://{}", self.addr),
        }
    }

    /// The test CA's certificate (PEM), when the sink speaks TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.certificates.as_deref().map(|c| c.ca_pem.as_str())
    }

    /// The data of the first message accepted (kept even when `keep` is off).
    pub fn first_message(&self) -> Option<Vec<u8>> {
        self.first.lock().unwrap().clone()
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
        let refuse = self.behaviour.lock().unwrap().refuse_connections.clone();
        if let Some(line) = refuse {
            let mut stream = stream;
            stream.write_all(format!("{line}\r\n").as_bytes()).await?;
            return Ok(());
        }
        let acceptor = self.certificates.as_ref().map(|c| c.acceptor.clone());
        match (self.tls, acceptor) {
            (SinkTls::Implicit, Some(acceptor)) => {
                let stream = acceptor.accept(stream).await?;
                self.converse(stream, true, false).await.map(|_| ())
            }
            (SinkTls::StartTls, Some(acceptor)) => match self.converse(stream, true, true).await? {
                Ended::Closed => Ok(()),
                Ended::StartTls(stream) => {
                    let stream = acceptor.accept(stream).await?;
                    self.converse(stream, false, false).await.map(|_| ())
                }
            },
            _ => self.converse(stream, true, false).await.map(|_| ()),
        }
    }

    /// One SMTP conversation on `stream` (after a greeting when `greet`), offering
    /// STARTTLS when `offer_starttls`.
    async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        greet: bool,
        offer_starttls: bool,
    ) -> std::io::Result<Ended<S>> {
        // One buffered stream for both directions: BufReader passes writes through.
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        if greet {
            reader
                .write_all(b"220 sink.test ESMTP herald test sink\r\n")
                .await?;
        }
        let mut line = String::new();
        let mut mail_from = String::new();
        let mut rcpt_to: Vec<String> = Vec::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(Ended::Closed);
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
                reader
                    .write_all(
                        format!(
                            "250-sink.test\r\n250-8BITMIME\r\n{size}{}250 SMTPUTF8\r\n",
                            if offer_starttls {
                                "250-STARTTLS\r\n"
                            } else {
                                ""
                            }
                        )
                        .as_bytes(),
                    )
                    .await?;
            } else if upper.starts_with("HELO") {
                reader.write_all(b"250 sink.test\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                let reject = self.behaviour.lock().unwrap().reject_sender.clone();
                if let Some(line) = reject {
                    reader.write_all(format!("{line}\r\n").as_bytes()).await?;
                    continue;
                }
                mail_from = address_in(&command);
                rcpt_to.clear();
                reader.write_all(b"250 2.1.0 Ok\r\n").await?;
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
                    Some(reply) => reader.write_all(format!("{reply}\r\n").as_bytes()).await?,
                    None => {
                        rcpt_to.push(rcpt);
                        reader.write_all(b"250 2.1.5 Ok\r\n").await?;
                    }
                }
            } else if upper == "DATA" {
                if rcpt_to.is_empty() {
                    reader
                        .write_all(b"503 5.5.1 No valid recipients\r\n")
                        .await?;
                    continue;
                }
                reader
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
                    return Ok(Ended::Closed); // the connection drops: no reply, nothing accepted
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
                    reader.write_all(format!("{line}\r\n").as_bytes()).await?;
                    continue;
                }
                let n = self.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 1 {
                    *self.first.lock().unwrap() = Some(data.clone());
                }
                if self.keep.load(Ordering::Relaxed) {
                    self.received.lock().unwrap().push(Received {
                        mail_from: mail_from.clone(),
                        rcpt_to: std::mem::take(&mut rcpt_to),
                        data,
                    });
                } else {
                    rcpt_to.clear();
                }
                reader
                    .write_all(format!("250 2.0.0 Ok: queued as {n}\r\n").as_bytes())
                    .await?;
            } else if upper == "STARTTLS" && offer_starttls {
                reader
                    .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await?;
                reader.flush().await?;
                return Ok(Ended::StartTls(reader.into_inner()));
            } else if upper == "RSET" {
                mail_from.clear();
                rcpt_to.clear();
                reader.write_all(b"250 2.0.0 Ok\r\n").await?;
            } else if upper == "NOOP" {
                reader.write_all(b"250 2.0.0 Ok\r\n").await?;
            } else if upper == "QUIT" {
                reader.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(Ended::Closed);
            } else {
                reader
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
