//! Where messages go: a folder of `.eml` files, or an SMTP relay.
//!
//! SMTP uses lettre's protocol implementation (`AsyncSmtpConnection`: EHLO, STARTTLS,
//! AUTH, the mail transaction) over connections herald opens and pools itself, because
//! lettre's own transport leaves Nagle's algorithm on: its message body and the closing
//! `.` are two writes, and the second waits for the server's delayed ACK, about 40 ms per
//! message (fixed upstream in lettre/lettre#1159, not yet released). Our sockets set
//! TCP_NODELAY. A pooled connection is checked with NOOP before reuse when it has been
//! idle, and any connection an error left broken is dropped, never reused
//! (lettre/lettre#743). Implicit TLS (`smtps://`) still connects through lettre.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use super::{Error, SendError};
use crate::config::{Secrets, SmtpConfig, SmtpTls, SmtpTransport};

/// A pooled connection older than this (idle) is checked with NOOP before reuse.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(10);
/// Idle connections are closed after this, before a typical server timeout (60 s).
const MAX_IDLE: Duration = Duration::from_secs(45);

/// A configured transport; cheap to clone (the SMTP pool is shared).
#[derive(Clone)]
pub enum Transport {
    /// One file per message; writing the same message again overwrites it.
    File(PathBuf),
    Smtp(Arc<SmtpPool>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::File(dir) => write!(f, "Transport::File({})", dir.display()),
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
}

impl Transport {
    pub fn from_config(smtp: &SmtpConfig, secrets: &Secrets) -> Result<Self, Error> {
        match &smtp.transport {
            SmtpTransport::File(dir) => Ok(Transport::File(dir.clone())),
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
                })))
            }
        }
    }

    /// Makes sure a file outbox exists (SMTP needs nothing up front).
    pub fn prepare(&self) -> Result<(), Error> {
        if let Transport::File(dir) = self {
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
        match self {
            Transport::File(dir) => write_eml(dir, file_stem, bytes).await,
            Transport::Smtp(pool) => pool.send(envelope, bytes).await,
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
    async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<String, SendError> {
        let mut conn = self.checkout().await?;
        let result = tokio::time::timeout(self.timeout, conn.send(envelope, bytes)).await;
        match result {
            Ok(Ok(response)) => {
                self.checkin(conn);
                let text: Vec<&str> = response.message().collect();
                Ok(format!("{} {}", response.code(), text.join(" "))
                    .trim()
                    .to_owned())
            }
            // lettre has already closed the connection; it is dropped here.
            // Only a 5xx reply is final; anything else (including a client-side refusal
            // such as a server without 8BITMIME) is retried until the attempts run out.
            Ok(Err(e)) if e.is_permanent() => Err(SendError::permanent(reply_of(&e))),
            Ok(Err(e)) => Err(SendError::transient(reply_of(&e))),
            Err(_) => Err(SendError::transient(format!(
                "no reply from {} within {}s",
                self.host,
                self.timeout.as_secs()
            ))),
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
                conn.abort().await;
                continue;
            }
            if idle_for > CHECK_AFTER_IDLE && !conn.test_connected().await {
                conn.abort().await;
                continue;
            }
            return Ok(conn);
        }
        tokio::time::timeout(self.timeout, self.connect())
            .await
            .unwrap_or_else(|_| {
                Err(SendError::transient(format!(
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
        // it is always temporary for the delivery (and logged for the operator).
        let fail = |e: lettre::transport::smtp::Error| {
            SendError::transient(format!("{}: {}", self.host, reply_of(&e)))
        };
        let tls = || TlsParameters::new(self.host.clone()).map_err(fail);
        let mut conn = if self.tls == SmtpTls::Implicit {
            AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                Some(tls()?),
                None,
            )
            .await
            .map_err(fail)?
        } else {
            let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| {
                    SendError::transient(format!(
                        "cannot connect to {}:{}: {e}",
                        self.host, self.port
                    ))
                })?;
            // The reason for managing connections here (see the module docs).
            let _ = stream.set_nodelay(true);
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(fail)?;
            match self.tls {
                SmtpTls::Required => conn.starttls(tls()?, &self.hello).await.map_err(fail)?,
                SmtpTls::Opportunistic if conn.can_starttls() => {
                    conn.starttls(tls()?, &self.hello).await.map_err(fail)?
                }
                _ => {}
            }
            conn
        };
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(fail)?;
        }
        Ok(conn)
    }
}

/// The server's reply as it was sent ("451 4.7.1 …"), or the error and its cause.
fn reply_of(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    if let Some(code) = e.status() {
        // lettre says "transient error (451): 4.7.1 …"
        let message = text.split_once("): ").map_or(text.as_str(), |(_, m)| m);
        return format!("{code} {message}");
    }
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
        |e: std::io::Error| SendError::transient(format!("cannot write {}: {e}", path.display()));
    tokio::fs::write(&tmp, bytes).await.map_err(io)?;
    tokio::fs::rename(&tmp, &path).await.map_err(io)?;
    Ok(format!("written to {}", path.display()))
}
