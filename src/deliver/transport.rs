//! Where messages go: a folder of `.eml` files, or an SMTP relay.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Error, SendError};
use crate::config::{Secrets, SmtpConfig, SmtpTls, SmtpTransport};

/// A configured transport; cheap to clone (the SMTP pool is shared).
#[derive(Clone)]
pub enum Transport {
    /// One file per message; writing the same message again overwrites it.
    File(PathBuf),
    Smtp {
        host: String,
        transport: AsyncSmtpTransport<Tokio1Executor>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::File(dir) => write!(f, "Transport::File({})", dir.display()),
            Transport::Smtp { host, .. } => write!(f, "Transport::Smtp({host})"),
        }
    }
}

impl Transport {
    pub fn from_config(smtp: &SmtpConfig, secrets: &Secrets) -> Result<Self, Error> {
        match &smtp.transport {
            SmtpTransport::File(dir) => Ok(Transport::File(dir.clone())),
            SmtpTransport::Smtp { host, port, tls } => {
                let relay_error = |e: lettre::transport::smtp::Error| Error::Relay {
                    host: host.clone(),
                    message: e.to_string(),
                };
                let mut builder = match tls {
                    SmtpTls::Implicit => {
                        AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(relay_error)?
                    }
                    SmtpTls::Required => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                        .map_err(relay_error)?,
                    SmtpTls::Opportunistic => {
                        let params = TlsParameters::new(host.clone()).map_err(relay_error)?;
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                            .tls(Tls::Opportunistic(params))
                    }
                    SmtpTls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    }
                };
                builder = builder
                    .port(*port)
                    .timeout(Some(smtp.timeout))
                    // Idle connections are closed before a typical server timeout (60 s), and
                    // the pool checks a connection before reusing it (lettre/lettre#743).
                    .pool_config(
                        PoolConfig::new()
                            .max_size(u32::try_from(smtp.max_connections).unwrap_or(4))
                            .idle_timeout(Duration::from_secs(30)),
                    );
                if let Some(user) = &smtp.username {
                    let password = secrets.smtp_password.clone().unwrap_or_default();
                    builder = builder.credentials(Credentials::new(user.clone(), password));
                }
                Ok(Transport::Smtp {
                    host: host.clone(),
                    transport: builder.build(),
                })
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
            Transport::Smtp { transport, .. } => match transport.send_raw(envelope, bytes).await {
                Ok(response) => {
                    let text: Vec<&str> = response.message().collect();
                    Ok(format!("{} {}", response.code(), text.join(" "))
                        .trim()
                        .to_owned())
                }
                Err(e) if e.is_permanent() || e.is_client() => {
                    Err(SendError::permanent(reply_of(&e)))
                }
                Err(e) => Err(SendError::transient(reply_of(&e))),
            },
        }
    }

    /// Closes pooled connections.
    pub async fn shutdown(&self) {
        if let Transport::Smtp { transport, .. } = self {
            transport.shutdown().await;
        }
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
