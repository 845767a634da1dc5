//! Where messages go: a folder of `.eml` files, or an SMTP relay.
//!
//! SMTP uses lettre's protocol implementation (`AsyncSmtpConnection`: EHLO, STARTTLS,
//! AUTH, the mail transaction) over connections herald opens and pools itself, because
//! lettre's own transport leaves Nagle's algorithm on: its message body and the closing
//! `.` are two writes, and the second waits for the server's delayed ACK, about 40 ms per
//! message (fixed upstream in lettre/lettre#1159, not yet released). Our sockets set
//! TCP_NODELAY. A pooled connection is checked with NOOP before reuse when it has been
//! idle, and any connection an error left broken is dropped, never reused
//! (lettre/lettre#743). Implicit TLS (`smtps://`) is ours too: the TCP_NODELAY socket,
//! then the rustls handshake (aws-lc-rs, the platform's roots plus `smtp.ca_file`), then
//! lettre's protocol over the encrypted stream, so port 465 sends as fast as STARTTLS.
//!
//! The mail transaction is driven one command at a time (MAIL, RCPT, DATA, content), so
//! every refusal is known with the step it answered: a 552 to the content is about the
//! message, a 550 to RCPT about the address (see [`super::Blame`]). The relay's `SIZE`
//! (RFC 1870), read from our own EHLO, caps what is sent: a message over it is never
//! handed over.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::{Error, SendError, Stage};
use crate::config::{Secrets, SmtpConfig, SmtpTls, SmtpTransport};

/// A pooled connection older than this (idle) is checked with NOOP before reuse.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(10);
/// Idle connections are closed after this, before a typical server timeout (60 s).
const MAX_IDLE: Duration = Duration::from_secs(45);

/// A configured transport; cheap to clone (the SMTP pool is shared).
#[derive(Clone)]
pub enum Transport {
    /// One file per message; writing the same message again overwrites it.
    File {
        dir: PathBuf,
        max_size: u64,
    },
    Smtp(Arc<SmtpPool>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::File { dir, .. } => write!(f, "Transport::File({})", dir.display()),
            Transport::Smtp(pool) => write!(f, "Transport::Smtp({}:{})", pool.host, pool.port),
        }
    }
}

/// Connections to one relay.
pub struct SmtpPool {
    host: String,
    port: u16,
    tls: SmtpTls,
    timeout: Duration,
    credentials: Option<Credentials>,
    hello: ClientId,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    max_idle: usize,
    /// `smtp.max_message_size`.
    max_size: u64,
    /// What the relay's EHLO advertised as `SIZE` (0: no limit, or not asked yet).
    advertised: std::sync::atomic::AtomicU64,
    /// A lower limit learned from the relay refusing a message as too big (0: none).
    learned: std::sync::atomic::AtomicU64,
    /// Whether a connection (and so an EHLO) was made yet.
    asked: std::sync::atomic::AtomicBool,
    /// `smtp.ca_file`'s certificates (DER), trusted besides the system's roots.
    extra_roots: Vec<Vec<u8>>,
    /// The rustls client for implicit TLS, made at the first connection (a machine
    /// without system roots fails only when TLS is used).
    implicit: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Transport {
    pub fn from_config(smtp: &SmtpConfig, secrets: &Secrets) -> Result<Self, Error> {
        match &smtp.transport {
            SmtpTransport::Folder(dir) => Ok(Transport::File {
                dir: dir.clone(),
                max_size: smtp.max_message_size,
            }),
            SmtpTransport::Smtp { host, port, tls } => {
                let credentials = smtp.username.as_ref().map(|user| {
                    Credentials::new(
                        user.clone(),
                        secrets.smtp_password.clone().unwrap_or_default(),
                    )
                });
                Ok(Transport::Smtp(Arc::new(SmtpPool {
                    host: host.clone(),
                    port: *port,
                    tls: *tls,
                    timeout: smtp.timeout,
                    credentials,
                    hello: ClientId::default(),
                    idle: Mutex::new(Vec::new()),
                    max_idle: smtp.max_connections,
                    max_size: smtp.max_message_size,
                    advertised: std::sync::atomic::AtomicU64::new(0),
                    learned: std::sync::atomic::AtomicU64::new(0),
                    asked: std::sync::atomic::AtomicBool::new(false),
                    extra_roots: smtp
                        .ca_file
                        .as_ref()
                        .map(|ca| ca.certificates.clone())
                        .unwrap_or_default(),
                    implicit: OnceLock::new(),
                })))
            }
        }
    }

    /// Makes sure a file outbox exists (SMTP needs nothing up front).
    pub fn prepare(&self) -> Result<(), Error> {
        if let Transport::File { dir, .. } = self {
            std::fs::create_dir_all(dir).map_err(|source| Error::Outbox {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// Hands one message over. `Ok` carries the server's reply: only then was the message
    /// accepted.
    pub async fn send(
        &self,
        envelope: &Envelope,
        bytes: &[u8],
        file_stem: &str,
    ) -> Result<String, SendError> {
        let limit = self.known_size_limit();
        if bytes.len() as u64 > limit {
            return Err(SendError::over_limit(format!(
                "not sent: the message is {} bytes and the relay accepts at most {limit}",
                bytes.len()
            )));
        }
        match self {
            Transport::File { dir, .. } => write_eml(dir, file_stem, bytes).await,
            Transport::Smtp(pool) => pool.send(envelope, bytes).await,
        }
    }

    /// The largest message that may be sent, as far as known now: `smtp.max_message_size`,
    /// or the relay's `SIZE` when it advertised a smaller one.
    pub fn known_size_limit(&self) -> u64 {
        match self {
            Transport::File { max_size, .. } => *max_size,
            Transport::Smtp(pool) => pool.size_limit(),
        }
    }

    /// [`Self::known_size_limit`] after asking the relay (one connection, kept for reuse)
    /// when it has not been asked yet. A relay that cannot be reached leaves the
    /// configured limit.
    pub async fn size_limit(&self) -> u64 {
        if let Transport::Smtp(pool) = self
            && !pool.asked.load(std::sync::atomic::Ordering::Relaxed)
            && let Ok(conn) = pool.checkout().await
        {
            pool.checkin(conn);
        }
        self.known_size_limit()
    }

    /// Tries the transport without sending anything: for SMTP, a connection with EHLO,
    /// STARTTLS and the login as configured; says what works.
    pub async fn check(&self) -> Result<String, SendError> {
        match self {
            Transport::File { dir, .. } => {
                self.prepare()
                    .map_err(|e| SendError::local(e.to_string(), false))?;
                Ok(format!(
                    "messages are written to {} (nothing is sent)",
                    dir.display()
                ))
            }
            Transport::Smtp(pool) => {
                let conn = tokio::time::timeout(pool.timeout, pool.connect())
                    .await
                    .unwrap_or_else(|_| {
                        Err(SendError::connection(format!(
                            "{}:{} did not answer within {}s",
                            pool.host,
                            pool.port,
                            pool.timeout.as_secs()
                        )))
                    })?;
                // Implicit TLS is our own stream, which lettre cannot see into.
                let tls = if conn.is_encrypted() || pool.tls == SmtpTls::Implicit {
                    "TLS"
                } else {
                    "no TLS"
                };
                let login = if pool.credentials.is_some() {
                    ", logged in"
                } else {
                    ""
                };
                let size = match pool.size_limit() {
                    n if n == pool.max_size => String::new(),
                    n => format!(", messages up to {n} bytes"),
                };
                pool.checkin(conn);
                Ok(format!("{}:{} ({tls}{login}{size})", pool.host, pool.port))
            }
        }
    }

    /// Closes pooled connections politely (QUIT).
    pub async fn shutdown(&self) {
        if let Transport::Smtp(pool) = self {
            let idle: Vec<_> = pool
                .idle
                .lock()
                .map(|mut v| std::mem::take(&mut *v))
                .unwrap_or_default();
            for (mut conn, _) in idle {
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
            }
        }
    }
}

impl SmtpPool {
    fn size_limit(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        [self.advertised.load(Relaxed), self.learned.load(Relaxed)]
            .into_iter()
            .filter(|n| *n > 0)
            .fold(self.max_size, u64::min)
    }

    async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<String, SendError> {
        let mut conn = self.checkout().await?;
        let result = tokio::time::timeout(self.timeout, transact(&mut conn, envelope, bytes)).await;
        match result {
            Ok(Ok(reply)) => {
                self.checkin(conn);
                Ok(reply)
            }
            Ok(Err(e)) => {
                if e.is_too_big() {
                    // The relay's real limit is below what was sent (it advertised none,
                    // or a larger one): aim lower next time.
                    let smaller = (bytes.len() as u64).saturating_mul(3) / 4;
                    let current = self.size_limit();
                    self.learned.store(
                        smaller.min(current).max(1),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
                // A refusal leaves the connection usable once the transaction is reset;
                // anything else (no reply) leaves it broken: dropped, never reused, and
                // never waited on (a QUIT to a relay that stopped answering would hang).
                if e.code.is_some()
                    && tokio::time::timeout(self.timeout, conn.command(Rset))
                        .await
                        .is_ok_and(|r| r.is_ok())
                {
                    self.checkin(conn);
                }
                Err(e)
            }
            Err(_) => {
                drop(conn);
                Err(SendError::connection(format!(
                    "no reply from {} within {}s",
                    self.host,
                    self.timeout.as_secs()
                )))
            }
        }
    }

    /// An idle connection that still works, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let candidate = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some((mut conn, since)) = candidate else {
                break;
            };
            let idle_for = since.elapsed();
            if idle_for > MAX_IDLE || conn.has_broken() {
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
                continue;
            }
            if idle_for > CHECK_AFTER_IDLE
                && !tokio::time::timeout(self.timeout, conn.test_connected())
                    .await
                    .unwrap_or(false)
            {
                continue;
            }
            return Ok(conn);
        }
        tokio::time::timeout(self.timeout, self.connect())
            .await
            .unwrap_or_else(|_| {
                Err(SendError::connection(format!(
                    "connecting to {} timed out",
                    self.host
                )))
            })
    }

    fn checkin(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push((conn, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        // Failing to connect, to start TLS or to log in says nothing about any recipient:
        // it is always temporary for the delivery. When the relay cannot work as
        // configured, the error says what to change (see `SendError::fix`).
        let at = format!("{}:{}", self.host, self.port);
        let fail = |e: lettre::transport::smtp::Error| {
            // lettre reports a refused certificate during STARTTLS as a connection error.
            if e.is_tls() || rustls_error_in(&e).is_some() {
                return SendError::unusable_relay(
                    format!(
                        "the TLS handshake with the relay at {at} failed: {}",
                        reply_of(&e)
                    ),
                    "check that the relay's certificate is valid for its name (a private relay's CA goes in smtp.ca_file; a relay on loopback may use smtp.tls = \"none\")",
                );
            }
            SendError::connection(format!("{at}: {}", reply_of(&e)))
        };
        let tls = || {
            let mut params = TlsParameters::builder(self.host.clone());
            for der in &self.extra_roots {
                params =
                    params.add_root_certificate(Certificate::from_der(der.clone()).map_err(fail)?);
            }
            params.build_rustls().map_err(fail)
        };
        let stream = self.open_socket(&at).await?;
        let mut conn = if self.tls == SmtpTls::Implicit {
            let stream = self.implicit_tls(stream, &at).await?;
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                .await
                .map_err(fail)?
        } else {
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(fail)?;
            match self.tls {
                SmtpTls::Required if !conn.can_starttls() => {
                    return Err(SendError::unusable_relay(
                        format!(
                            "the relay at {at} does not offer STARTTLS, and smtp.tls is \"required\""
                        ),
                        "set smtp.tls = \"none\" for a relay on loopback, or use smtps:// for a relay on port 465",
                    ));
                }
                SmtpTls::Required => conn.starttls(tls()?, &self.hello).await.map_err(fail)?,
                SmtpTls::Opportunistic if conn.can_starttls() => {
                    conn.starttls(tls()?, &self.hello).await.map_err(fail)?
                }
                _ => {}
            }
            conn
        };
        // Our own EHLO (lettre keeps only the extensions it knows): the relay's SIZE.
        let ehlo = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(fail)?;
        let lines: Vec<&str> = ehlo.message().collect();
        self.advertised.store(
            advertised_size(&lines).unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.asked.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| match e.status() {
                    Some(_) => SendError::unusable_relay(
                        format!("the relay at {at} refused the login: {}", reply_of(&e)),
                        "check smtp.username and HERALD_SMTP_PASSWORD",
                    ),
                    None => fail(e),
                })?;
        }
        Ok(conn)
    }
}

impl SmtpPool {
    /// A TCP connection to the relay with Nagle off (the reason for managing connections
    /// here, see the module docs), within the timeout.
    async fn open_socket(&self, at: &str) -> Result<TcpStream, SendError> {
        let stream = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| {
            SendError::connection(format!("{at}: no connection within {:?}", self.timeout))
        })?
        .map_err(|e| connect_error(at, &e))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// The TLS handshake of `smtps://`, on our socket.
    async fn implicit_tls(&self, stream: TcpStream, at: &str) -> Result<TlsSocket, SendError> {
        let unusable = |problem: String| {
            SendError::unusable_relay(
                format!("the TLS handshake with the relay at {at} failed: {problem}"),
                "check that the relay's certificate is valid for its name (a private relay's CA goes in smtp.ca_file)",
            )
        };
        let config = self
            .implicit
            .get_or_init(|| tls_client(&self.extra_roots))
            .clone()
            .map_err(unusable)?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|_| unusable(format!("{:?} is not a name TLS can check", self.host)))?;
        let handshake = tokio_rustls::TlsConnector::from(config).connect(name, stream);
        match tokio::time::timeout(self.timeout, handshake).await {
            Err(_) => Err(SendError::connection(format!(
                "{at}: no TLS handshake within {:?}",
                self.timeout
            ))),
            Ok(Ok(stream)) => Ok(TlsSocket(stream)),
            // A certificate or protocol problem is the relay's setup; a reset mid-way is
            // the network's, and temporary.
            Ok(Err(e)) => match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => Err(unusable(tls.to_string())),
                None => Err(SendError::connection(format!("{at}: {e}"))),
            },
        }
    }
}

/// The client side of implicit TLS: aws-lc-rs, TLS 1.2 and 1.3, the platform's roots
/// (as lettre uses them for STARTTLS) plus `extra_roots`.
fn tls_client(extra_roots: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = extra_roots
        .iter()
        .map(|der| rustls::pki_types::CertificateDer::from(der.clone()));
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots, Arc::clone(&provider))
            .map_err(|e| format!("no roots to check the relay's certificate with: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous() // the platform verifier is the checking verifier, not a bypass
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls error (a refused certificate, a protocol failure) behind `e`, if any.
fn rustls_error_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

/// An implicit-TLS stream lettre can speak SMTP over.
#[derive(Debug)]
struct TlsSocket(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsSocket {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// One mail transaction, a command at a time, so that a refusal is known with its step.
async fn transact(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<String, SendError> {
    let mut options = Vec::new();
    let non_ascii = envelope
        .to()
        .iter()
        .chain(envelope.from())
        .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::local(
                "not sent: the address needs SMTPUTF8, which the relay does not offer",
                false,
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(SendError::local(
                "not sent: the message needs 8BITMIME, which the relay does not offer",
                false,
            ));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let step = |stage: Stage| move |e: lettre::transport::smtp::Error| refusal(stage, &e);
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(step(Stage::Mail))?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![]))
            .await
            .map_err(step(Stage::Rcpt))?;
    }
    conn.command(Data).await.map_err(step(Stage::Data))?;
    // The content in one write, dot-stuffed here: lettre's `message` stuffs a byte at a
    // time and writes the closing dot separately (a tenth of a digest send's CPU).
    let response = match std::str::from_utf8(bytes) {
        Ok(text) => conn.command(Content(text)).await,
        Err(_) => conn.message(bytes).await,
    }
    .map_err(step(Stage::Content))?;
    let text: Vec<&str> = response.message().collect();
    Ok(format!("{} {}", response.code(), text.join(" "))
        .trim()
        .to_owned())
}

/// A message's content as DATA sends it (RFC 5321 4.5.2): a dot that starts a line is
/// doubled, and the lone dot ends it. Formatted once into the buffer lettre writes.
struct Content<'a>(&'a str);

impl std::fmt::Display for Content<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        if rest.starts_with('.') {
            f.write_str(".")?;
        }
        while let Some(at) = rest.find("\r\n.") {
            f.write_str(&rest[..at + 2])?;
            f.write_str(".")?;
            rest = &rest[at + 2..];
        }
        f.write_str(rest)?;
        f.write_str("\r\n.\r\n")
    }
}

/// lettre's error for one step, as a [`SendError`]: the reply code from its typed
/// status, the reply's text from its source.
fn refusal(stage: Stage, e: &lettre::transport::smtp::Error) -> SendError {
    match e.status() {
        Some(code) => {
            let text = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            if u16::from(code) == 530 {
                // RFC 4954: authentication required.
                return SendError::unusable_relay(
                    format!("the relay wants a login ({} {text})", u16::from(code)),
                    "set smtp.username and HERALD_SMTP_PASSWORD",
                );
            }
            SendError::reply(stage, u16::from(code), &text)
        }
        None => SendError::connection(reply_of(e)),
    }
}

/// `SIZE n` from EHLO lines (RFC 1870); `None` when absent or unlimited (0).
fn advertised_size(lines: &[&str]) -> Option<u64> {
    lines.iter().find_map(|line| {
        let mut words = line.split_whitespace();
        words
            .next()
            .filter(|w| w.eq_ignore_ascii_case("SIZE"))
            .and_then(|_| words.next())
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0)
    })
}

/// A failed TCP connect: nobody listening, or a name that does not resolve, is the
/// configuration's problem; anything else (a timeout, a route down) may pass.
fn connect_error(at: &str, e: &std::io::Error) -> SendError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => SendError::unusable_relay(
            format!("nothing accepts connections at {at} (connection refused)"),
            "check smtp.url, and that the relay is running",
        ),
        _ if e.to_string().contains("lookup") || e.to_string().contains("resolve") => {
            SendError::unusable_relay(
                format!("the relay's name in {at} does not resolve: {e}"),
                "check the host in smtp.url",
            )
        }
        _ => SendError::connection(format!("cannot connect to {at}: {e}")),
    }
}

/// What went wrong without a reply: the error and its cause.
fn reply_of(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    if let Some(source) = std::error::Error::source(e) {
        let source = source.to_string();
        if !text.contains(&source) {
            text.push_str(": ");
            text.push_str(&source);
        }
    }
    text
}

/// Writes a message into the outbox atomically (temp file, then rename).
async fn write_eml(dir: &Path, stem: &str, bytes: &[u8]) -> Result<String, SendError> {
    let path = dir.join(format!("{stem}.eml"));
    let tmp = dir.join(format!(".{stem}.eml.tmp"));
    let io =
        |e: std::io::Error| SendError::local(format!("cannot write {}: {e}", path.display()), true);
    tokio::fs::write(&tmp, bytes).await.map_err(io)?;
    tokio::fs::rename(&tmp, &path).await.map_err(io)?;
    Ok(format!("written to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_dot_stuffed_like_lettre_does_it() {
        for (message, sent) in [
            ("Hi\r\n", "Hi\r\n\r\n.\r\n"),
            (
                ".lead\r\n.\r\nx.y\r\n..two",
                "..lead\r\n..\r\nx.y\r\n...two\r\n.\r\n",
            ),
            ("a\n.bare-lf\r\n", "a\n.bare-lf\r\n\r\n.\r\n"),
            ("", "\r\n.\r\n"),
        ] {
            assert_eq!(Content(message).to_string(), sent, "{message:?}");
        }
    }

    #[test]
    fn reads_the_relays_size_from_ehlo() {
        assert_eq!(
            advertised_size(&["sink.test", "8BITMIME", "SIZE 52428800", "SMTPUTF8"]),
            Some(52_428_800)
        );
        assert_eq!(advertised_size(&["sink.test", "SIZE"]), None);
        assert_eq!(advertised_size(&["sink.test", "SIZE 0"]), None);
        assert_eq!(advertised_size(&["sink.test", "PIPELINING"]), None);
    }
}
