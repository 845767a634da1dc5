//! `herald bounces read`: bounces, complaints and mailto unsubscribes from an MTA's pipe,
//! a file, or a Maildir.
//!
//! As a pipe it exits 0 when the message was processed or filed for a person, and 75
//! (EX_TEMPFAIL: the MTA keeps the message and tries again) when the store cannot be
//! used; it never makes the MTA bounce mail back. In a Maildir, processed messages move
//! from `new/` to `cur/` flagged seen; the rest stay in `new/` for a person.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::Outcome;
use crate::clock::SystemClock;
use crate::config::{Config, StoreUrl};
use crate::deliver::returned::MAX_MESSAGE_BYTES;
use crate::pipeline::{Handled, Herald};

/// What to read.
#[derive(Debug, Clone)]
pub struct ReadArgs {
    /// A file, or `-` for standard input.
    pub file: Option<PathBuf>,
    pub maildir: Option<PathBuf>,
    pub recipient: Option<String>,
    /// Where a message that is not for herald is filed (a Maildir).
    pub hold: Option<PathBuf>,
    /// The signing secret, for a pipe without `HERALD_SECRET`.
    pub secret_file: Option<PathBuf>,
}

/// Largest message kept for a person; a bigger one is left with the MTA (exit 75).
const MAX_HELD_BYTES: u64 = 100 * 1024 * 1024;

/// Messages `held-mail/new` may hold before herald stops filing more (exit 75: the MTA
/// keeps them): a flood of spam to the bounce address must not fill the store's disk.
const MAX_HELD_MESSAGES: usize = 10_000;

pub async fn read(config: Config, args: ReadArgs) -> Result<Outcome> {
    use futures_util::FutureExt;
    // Whatever happens, a pipe answers 0 or 75: anything else makes the MTA bounce the
    // mail back (and a bounced bounce goes to the postmaster).
    let piped = args.maildir.is_none();
    match std::panic::AssertUnwindSafe(read_inner(config, args))
        .catch_unwind()
        .await
    {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) if piped => {
            eprintln!("herald: {e:#}; the MTA should try again");
            Ok(Outcome::TempFail)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            eprintln!("herald: reading the message crashed; the MTA should try again");
            Ok(Outcome::TempFail)
        }
    }
}

async fn read_inner(mut config: Config, args: ReadArgs) -> Result<Outcome> {
    let hold = args.hold.clone().unwrap_or_else(|| default_hold(&config));
    // Reading bounces sends nothing: no DKIM key is needed (a pipe has no
    // HERALD_DKIM_KEY), and none is loaded.
    config.smtp.dkim = None;
    let mut secrets = crate::config::Secrets::from_env();
    if let Some(path) = &args.secret_file {
        // The secret, and optionally the previous one (after a rotation) on a second line.
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the secret file {}", path.display()))?;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        secrets.signing_secret = lines.next().map(str::to_owned);
        if let Some(previous) = lines.next() {
            secrets.previous_secret = Some(previous.to_owned());
        }
    }
    let had_secret = secrets.signing_secret.is_some();
    let herald = match Herald::open_with(config, Arc::new(SystemClock), secrets).await {
        Ok(herald) => herald,
        Err(e) => {
            eprintln!("herald: cannot start ({e:#}); the MTA should try again");
            return Ok(Outcome::TempFail);
        }
    };
    if !had_secret {
        // Never make up a secret here: no token would verify, and every bounce would be
        // left for a person without a word.
        match herald.store.setting("signing_secret").await {
            Ok(Some(_)) => eprintln!(
                "herald: warning: HERALD_SECRET is not set; using the secret herald generated and keeps in the database (if `herald serve` runs with HERALD_SECRET, give it here with --secret-file)"
            ),
            Ok(None) => {
                eprintln!(
                    "herald: HERALD_SECRET is not set and the store holds no generated secret, so no token can be checked (an MTA's pipe clears the environment: pass --secret-file FILE); the MTA should try again"
                );
                return Ok(Outcome::TempFail);
            }
            Err(e) => {
                eprintln!("herald: the store cannot be used now ({e:#}); the MTA should try again");
                return Ok(Outcome::TempFail);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if let Some(dir) = &args.maildir {
        return read_maildir(&herald, dir, &mut out).await;
    }
    let bytes = match args.file.as_deref() {
        None => read_limited(std::io::stdin().lock(), MAX_HELD_BYTES),
        Some(path) if path == Path::new("-") => {
            read_limited(std::io::stdin().lock(), MAX_HELD_BYTES)
        }
        Some(path) => std::fs::File::open(path).and_then(|f| read_limited(f, MAX_HELD_BYTES)),
    };
    let bytes = match bytes {
        Ok(bytes) if bytes.len() as u64 > MAX_HELD_BYTES => {
            eprintln!(
                "herald: the message is over {} MiB; left with the MTA",
                MAX_HELD_BYTES / 1024 / 1024
            );
            return Ok(Outcome::TempFail);
        }
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("herald: cannot read the message ({e}); the MTA should try again");
            return Ok(Outcome::TempFail);
        }
    };
    let handled = match herald
        .handle_returned(&bytes, args.recipient.as_deref())
        .await
    {
        Ok(handled) => handled,
        Err(e) => {
            eprintln!("herald: cannot record it now ({e:#}); the MTA should try again");
            return Ok(Outcome::TempFail);
        }
    };
    // What was done goes to standard output; a closed one changes nothing about it.
    match &handled {
        Handled::Applied { what } | Handled::Duplicate { what } => {
            let _ = writeln!(out, "{what}");
        }
        Handled::ForAPerson { why } => {
            match deliver_to_maildir(&hold, &bytes, herald.clock.now()) {
                Ok(path) => {
                    let _ = writeln!(
                        out,
                        "not for herald ({why}): left for a person in {}",
                        path.display()
                    );
                }
                Err(e) => {
                    eprintln!(
                        "herald: not for herald ({why}), and it cannot be filed in {}: {e}; the MTA should try again",
                        hold.display()
                    );
                    return Ok(Outcome::TempFail);
                }
            }
        }
    }
    herald.store.close().await;
    Ok(Outcome::Success)
}

/// Reads every message in `dir/new`, moving those herald processed to `dir/cur`.
async fn read_maildir(herald: &Herald, dir: &Path, out: &mut impl Write) -> Result<Outcome> {
    let new = dir.join("new");
    let cur = dir.join("cur");
    std::fs::create_dir_all(&cur).with_context(|| format!("cannot create {}", cur.display()))?;
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&new)
        .with_context(|| format!("{} is not a Maildir (no new/)", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name())
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    names.sort();
    let (mut processed, mut left, mut unreadable) = (0u64, 0u64, 0u64);
    for name in names {
        let path = new.join(&name);
        let bytes = match std::fs::File::open(&path)
            .and_then(|f| read_limited(f, MAX_MESSAGE_BYTES as u64))
        {
            Ok(bytes) => bytes,
            Err(e) => {
                // Gone (another reader took it) or unreadable: that message alone.
                eprintln!("{}: cannot read it: {e}", path.display());
                unreadable += 1;
                continue;
            }
        };
        let handled = match herald.handle_returned(&bytes, None).await {
            Ok(handled) => handled,
            Err(e) => {
                eprintln!(
                    "herald: the store cannot be used now ({e:#}); {} and the rest stay in new/",
                    path.display()
                );
                return Ok(Outcome::TempFail);
            }
        };
        let label = name.to_string_lossy();
        match &handled {
            Handled::Applied { what } | Handled::Duplicate { what } => {
                let base = label.split(":2,").next().unwrap_or(&label);
                let mut target = cur.join(format!("{base}:2,S"));
                let mut n = 1;
                while target.exists() {
                    n += 1;
                    target = cur.join(format!("{base}.{n}:2,S"));
                }
                match std::fs::rename(&path, &target) {
                    Ok(()) => {}
                    // Another reader filed it first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        eprintln!(
                            "{}: processed, but cannot move it to {}: {e}",
                            path.display(),
                            target.display()
                        );
                        unreadable += 1;
                        continue;
                    }
                }
                processed += 1;
                writeln!(out, "{label}: {what}")?;
            }
            Handled::ForAPerson { why } => {
                left += 1;
                writeln!(out, "{label}: left for a person: {why}")?;
            }
        }
    }
    writeln!(
        out,
        "{}: {processed} processed, {left} left for a person in new/{}",
        dir.display(),
        if unreadable > 0 {
            format!(", {unreadable} unreadable")
        } else {
            String::new()
        }
    )?;
    herald.store.close().await;
    Ok(if unreadable > 0 {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}

/// At most `limit` bytes and one more (so that a longer message shows as longer).
fn read_limited(reader: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `held-mail/` beside the store's file (the working directory for an in-memory one).
fn default_hold(config: &Config) -> PathBuf {
    match &config.store.url {
        StoreUrl::Sqlite(path) => path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("held-mail"), |p| p.join("held-mail")),
        StoreUrl::SqliteMemory => PathBuf::from("held-mail"),
    }
}

/// Delivers `bytes` into the Maildir `dir` the Maildir way (write in `tmp/`, then
/// rename into `new/`); returns the message's path.
pub fn deliver_to_maildir(
    dir: &Path,
    bytes: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> std::io::Result<PathBuf> {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    if std::fs::read_dir(dir.join("new"))?
        .take(MAX_HELD_MESSAGES)
        .count()
        >= MAX_HELD_MESSAGES
    {
        return Err(std::io::Error::other(format!(
            "{MAX_HELD_MESSAGES} messages already wait there for a person; read them first"
        )));
    }
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "herald".into());
    let host: String = host
        .chars()
        .map(|c| if c == '/' || c == ':' { '_' } else { c })
        .collect();
    let name = format!(
        "{}.M{}P{}R{}.{host}",
        now.timestamp(),
        now.timestamp_subsec_micros(),
        std::process::id(),
        crate::domain::hex(&random)
    );
    let tmp = dir.join("tmp").join(&name);
    {
        let mut file = std::fs::File::create_new(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    let target = dir.join("new").join(&name);
    std::fs::rename(&tmp, &target)?;
    Ok(target)
}
