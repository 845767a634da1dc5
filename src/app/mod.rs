//! Commands mapped onto the pipeline, and what they print.
//!
//! Output for people goes to stdout (tables, summaries) or stdout as JSON with `--json`;
//! logs go to stderr. The [`Outcome`] decides the exit code.

mod bounces;
mod digest;
mod progress;
mod serve;
mod status;
mod subscribers;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::cli::{
    BouncesCommand, Cli, Command, DkimCommand, EnrichArgs, FeedCommand, PollArgs, PostsCommand,
};
use crate::clock::SystemClock;
use crate::config::{self, Config};
use crate::domain::{Post, PostId, RelatedPost};
use crate::pipeline::{EnrichReport, EnrichScope, Herald, PollOutcome, PollReport};
use crate::render::Templates;
use crate::render::email::check_templates;
use crate::store::PostFilter;

/// How a command ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 2: the run finished but some part of it (a source) failed.
    Partial,
    /// Exit 75 (EX_TEMPFAIL): try again later; an MTA keeps the message.
    TempFail,
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<Outcome> {
    // Key generation needs no config (it is how an operator writes one).
    if let Command::Dkim(DkimCommand::Keygen {
        selector,
        domain,
        algorithm,
        out,
    }) = &cli.command
    {
        return dkim_keygen(selector, domain, algorithm, out.as_deref());
    }
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    // An MTA's pipe: a config it cannot read is the operator's to fix, and the mail
    // waits for it (exit 75) rather than bouncing back.
    let piped = matches!(cli.command, Command::Bounces(_));
    let config = match config::load(&path) {
        Ok(config) => config,
        Err(e) if piped => {
            eprintln!("herald: {e:#}; the MTA should try again once the config is fixed");
            return Ok(Outcome::TempFail);
        }
        Err(config::Error::Invalid(problems)) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            let n = problems.len();
            bail!(
                "{}: {n} problem{} in the config",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
        }
        Err(e) => return Err(e.into()),
    };
    match cli.command {
        Command::CheckConfig { connect } => {
            let outcome = check_config(&config)?;
            if connect {
                check_connections(&config).await
            } else {
                Ok(outcome)
            }
        }
        Command::Poll(args) => poll(config, args, cli.quiet).await,
        Command::Enrich(args) => enrich(config, args, cli.quiet).await,
        Command::Subscribers(cmd) => subscribers::run(config, cmd, cli.quiet).await,
        Command::Digest(cmd) => digest::run(config, cmd, cli.quiet).await,
        Command::Feed(FeedCommand::Write { out_dir }) => feed_write(config, out_dir).await,
        Command::Run { digest } => serve::run(config, digest, cli.quiet).await,
        Command::Serve { listen } => serve::serve(config, listen).await,
        Command::Posts(cmd) => posts(config, cmd).await,
        Command::Status { json } => status::run(config, json).await,
        Command::Dkim(_) => bail!("dkim commands run before the config is read"),
        Command::Bounces(BouncesCommand::Read {
            file,
            maildir,
            recipient,
            hold,
            secret_file,
        }) => {
            bounces::read(
                config,
                bounces::ReadArgs {
                    file,
                    maildir,
                    recipient,
                    hold,
                    secret_file,
                },
            )
            .await
        }
    }
}

/// `herald dkim keygen`.
fn dkim_keygen(
    selector: &str,
    domain: &str,
    algorithm: &str,
    out: Option<&std::path::Path>,
) -> Result<Outcome> {
    use crate::config::{DkimAlgorithm, DkimConfig};
    use crate::deliver::dkim::{DkimSigner, generate_key, txt_strings};
    let algorithm = match algorithm {
        "rsa-sha256" => DkimAlgorithm::RsaSha256,
        "ed25519-sha256" => DkimAlgorithm::Ed25519Sha256,
        other => bail!("--algorithm: \"{other}\" is not rsa-sha256 or ed25519-sha256"),
    };
    // The same checks as the config's, on a config of just these values.
    let toml = format!(
        "[site]\ntitle = \"k\"\nbase_url = \"https://example.org/\"\n[smtp.dkim]\ndomain = {}\nselector = {}\n",
        toml_string(domain),
        toml_string(selector)
    );
    let checked = match config::parse(&toml, std::path::Path::new("keygen")) {
        Ok(checked) => checked,
        Err(config::Error::Invalid(problems)) => {
            let what: Vec<String> = problems
                .iter()
                .map(|p| {
                    format!(
                        "--{}: {}",
                        p.key.rsplit('.').next().unwrap_or(""),
                        p.message
                    )
                })
                .collect();
            bail!("{}", what.join("; "))
        }
        Err(e) => return Err(e.into()),
    };
    let Some(dkim) = checked.smtp.dkim else {
        bail!("--domain/--selector were not read");
    };
    let path = out.map_or_else(
        || PathBuf::from(format!("dkim-{selector}.pem")),
        std::path::Path::to_path_buf,
    );
    let pem = generate_key(algorithm).map_err(|e| anyhow::anyhow!(e))?;
    let signer = DkimSigner::load(&DkimConfig { algorithm, ..dkim }, Some(&pem))
        .map_err(|e| anyhow::anyhow!(e))?;
    let (name, record) = signer.dns_record().map_err(|e| anyhow::anyhow!(e))?;
    write_private(&path, &pem)?;
    let algorithm_name = match algorithm {
        DkimAlgorithm::RsaSha256 => "rsa-sha256",
        DkimAlgorithm::Ed25519Sha256 => "ed25519-sha256",
    };
    println!("wrote {}", path.display());
    println!();
    println!(
        "Publish this TXT record (its value is split into strings of at most 255 characters, as DNS requires; a DNS host's web form may want them joined):"
    );
    println!("{name}. IN TXT {}", txt_strings(&record));
    println!();
    println!("Then add to the config:");
    println!("[smtp.dkim]");
    println!("domain = {}", toml_string(signer.domain()));
    println!("selector = {}", toml_string(selector));
    println!("algorithm = \"{algorithm_name}\"");
    println!("private_key = {}", toml_string(&path.display().to_string()));
    Ok(Outcome::Success)
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes a new file readable by its owner only; an existing file is left alone.
fn write_private(path: &std::path::Path, contents: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (an existing key is never overwritten)",
            path.display()
        )
    })?;
    if let Err(e) = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // A half-written key must not be left to be mistaken for a whole one.
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

async fn open(config: Config) -> Result<Herald> {
    Herald::open(config, Arc::new(SystemClock))
        .await
        .context("cannot start")
}

fn check_config(config: &Config) -> Result<Outcome> {
    let mut problems = Vec::new();
    let secrets = config::Secrets::from_env();
    // The DKIM key: it parses, is of the configured kind, and signs for the From domain.
    if let Some(dkim) = &config.smtp.dkim {
        match crate::deliver::dkim::DkimSigner::load(dkim, secrets.dkim_key.as_deref()) {
            Ok(signer) => {
                if let Some(warning) = signer.alignment_warning(&config.smtp.from.email) {
                    eprintln!("warning: {warning}");
                }
            }
            Err(e) => problems.push(format!("{}: {e}", config.file.display())),
        }
    }
    // Secrets are configuration too, from the environment.
    match secrets.check() {
        Ok(warnings) => {
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
        }
        Err(e) => problems.push(format!("environment: {e}")),
    }
    // Templates are part of the configuration: render each digest's against a sample.
    for (i, digest) in config.digests.iter().enumerate() {
        let checked = Templates::load(&config.templates.dir, &[digest.template.as_str()])
            .and_then(|templates| check_templates(&templates, &config.site, digest));
        if let Err(e) = checked {
            problems.push(format!(
                "{}: digests[{i}] \"{}\": {e}",
                config.file.display(),
                digest.name
            ));
        }
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{problem}");
        }
        bail!(
            "{}: {} problem{} (templates, secrets, keys)",
            config.file.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    println!(
        "{}: ok ({}, {})",
        config.file.display(),
        plural(config.sources.len(), "source"),
        plural(config.digests.len(), "digest")
    );
    Ok(Outcome::Success)
}

/// `check-config --connect`: the relay (connect, EHLO, STARTTLS, login, nothing sent)
/// and every enabled source (fetched and parsed, nothing stored), one line each.
async fn check_connections(config: &Config) -> Result<Outcome> {
    let mut out = std::io::stdout().lock();
    let mut outcome = Outcome::Success;
    let secrets = config::Secrets::from_env();
    let transport = crate::deliver::Transport::from_config(&config.smtp, &secrets)?;
    match transport.check().await {
        Ok(what) => writeln!(out, "smtp: ok: {what}")?,
        Err(e) => {
            outcome = Outcome::Partial;
            match &e.fix {
                Some(fix) => writeln!(out, "smtp: FAILED: {}; {fix}", e.reply)?,
                None => writeln!(out, "smtp: FAILED: {}", e.reply)?,
            }
        }
    }
    transport.shutdown().await;
    let fetcher = crate::ingest::Fetcher::new(config.ingest.max_redirects)?;
    for source in config.sources.iter().filter(|s| s.enabled) {
        let fetched = fetcher
            .fetch(
                source,
                &crate::domain::SourceState::default(),
                crate::clock::Clock::now(&SystemClock),
            )
            .await;
        let line = match fetched {
            Ok(crate::ingest::Fetched::Body {
                bytes,
                url,
                content_type,
                ..
            }) => match crate::ingest::read_feed(&bytes, content_type.as_deref(), url.as_deref()) {
                Ok(parsed) => {
                    let mut line = format!(
                        "ok: {} entries, {} bytes",
                        parsed.feed.entries.len(),
                        bytes.len()
                    );
                    if let Some(encoding) = parsed.encoding {
                        line.push_str(&format!(", decoded from {encoding}"));
                    }
                    if let Some(error) = parsed.recovered {
                        line.push_str(&format!(
                            "; WARNING: malformed ({error}), its complete entries were recovered"
                        ));
                    }
                    line
                }
                Err(reason) => {
                    outcome = Outcome::Partial;
                    format!("FAILED: fetched, but {reason}")
                }
            },
            Ok(crate::ingest::Fetched::NotModified { .. }) => "ok: not modified".into(),
            Err(e) => {
                outcome = Outcome::Partial;
                format!("FAILED: {e}")
            }
        };
        writeln!(out, "source {}: {line}", source.name)?;
    }
    Ok(outcome)
}

async fn poll(config: Config, args: PollArgs, quiet: bool) -> Result<Outcome> {
    let herald = open(config).await?;
    let drawer = progress::Drawer::start(Arc::clone(&herald.progress), quiet);
    let report = herald.poll_sources(args.source.as_deref()).await;
    drawer.finish().await;
    let report = report?;
    let mut out = std::io::stdout().lock();
    write_poll_report(&mut out, &report)?;
    if report.changed() {
        let enriched = herald.enrich(EnrichScope::Stale).await?;
        write_enrich_report(&mut out, &enriched)?;
        let files = herald.write_feeds(None).await?;
        write_feed_report(&mut out, &files)?;
    }
    let failed = report.failed();
    herald.store.close().await;
    Ok(if failed > 0 {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}

async fn enrich(config: Config, args: EnrichArgs, quiet: bool) -> Result<Outcome> {
    let herald = open(config).await?;
    let scope = if args.rebuild {
        EnrichScope::Rebuild
    } else {
        EnrichScope::Stale
    };
    let drawer = progress::Drawer::start(Arc::clone(&herald.progress), quiet);
    let report = herald.enrich(scope).await;
    drawer.finish().await;
    let report = report?;
    let mut out = std::io::stdout().lock();
    write_enrich_report(&mut out, &report)?;
    herald.store.close().await;
    Ok(Outcome::Success)
}

async fn feed_write(config: Config, out_dir: Option<PathBuf>) -> Result<Outcome> {
    let herald = open(config).await?;
    let files = herald.write_feeds(out_dir.as_deref()).await?;
    write_feed_report(&mut std::io::stdout().lock(), &files)?;
    herald.close().await;
    Ok(Outcome::Success)
}

pub(crate) fn write_feed_report(
    out: &mut impl Write,
    files: &[crate::pipeline::FeedFile],
) -> std::io::Result<()> {
    let line: Vec<String> = files
        .iter()
        .map(|f| {
            format!(
                "{} ({})",
                f.path.display(),
                if f.changed { "written" } else { "unchanged" }
            )
        })
        .collect();
    writeln!(out, "feeds: {}", line.join(", "))
}

/// One line per source, then a total.
pub(crate) fn write_poll_report(out: &mut impl Write, report: &PollReport) -> std::io::Result<()> {
    for source in &report.sources {
        match &source.outcome {
            PollOutcome::NotModified => writeln!(out, "{}: not modified", source.name)?,
            PollOutcome::Stored {
                entries,
                changes,
                notes,
            } => {
                let mut read = Vec::new();
                if notes.unreadable > 0 {
                    read.push(format!("{} unreadable", notes.unreadable));
                }
                if let Some(encoding) = notes.encoding {
                    read.push(format!("decoded from {encoding}"));
                }
                if notes.replaced {
                    read.push("bytes invalid in its encoding replaced".to_owned());
                }
                let read = if read.is_empty() {
                    String::new()
                } else {
                    format!(", {}", read.join(", "))
                };
                writeln!(
                    out,
                    "{}: {} new, {} updated, {} unchanged ({} entr{}{read})",
                    source.name,
                    changes.new.len(),
                    changes.updated.len(),
                    changes.unchanged,
                    entries,
                    if *entries == 1 { "y" } else { "ies" },
                )?;
                if let Some(error) = &notes.recovered {
                    writeln!(
                        out,
                        "{}: WARNING: the document is malformed ({error}); its complete entries were recovered — tell the publisher, their feed is broken",
                        source.name
                    )?;
                }
            }
            PollOutcome::Failed { error, .. } => writeln!(out, "{}: FAILED: {error}", source.name)?,
        }
    }
    let n = report.sources.len();
    writeln!(
        out,
        "polled {n} source{}: {} new post{}, {} failed",
        if n == 1 { "" } else { "s" },
        report.new_posts(),
        if report.new_posts() == 1 { "" } else { "s" },
        report.failed()
    )
}

fn write_enrich_report(out: &mut impl Write, report: &EnrichReport) -> std::io::Result<()> {
    writeln!(
        out,
        "enriched: {} summar{}, {} related list{}{}",
        report.summarized,
        if report.summarized == 1 { "y" } else { "ies" },
        report.related_lists,
        if report.related_lists == 1 { "" } else { "s" },
        if report.rebuilt {
            " (index rebuilt)"
        } else {
            ""
        }
    )
}

async fn posts(config: Config, cmd: PostsCommand) -> Result<Outcome> {
    let herald = open(config).await?;
    let mut out = std::io::stdout().lock();
    match cmd {
        PostsCommand::List {
            source,
            limit,
            json,
        } => {
            if let Some(name) = &source
                && !herald.config.sources.iter().any(|s| &s.name == name)
            {
                bail!("no source named \"{name}\"");
            }
            let posts = herald
                .store
                .list_posts(&PostFilter {
                    source,
                    limit: Some(limit),
                })
                .await?;
            if json {
                serde_json::to_writer_pretty(&mut out, &posts)?;
                writeln!(out)?;
            } else {
                for post in &posts {
                    writeln!(
                        out,
                        "{:>6}  {}  {:<16}  {}",
                        post.id,
                        post.display_date().format("%Y-%m-%d"),
                        post.source,
                        post.title
                    )?;
                }
            }
        }
        PostsCommand::Show { id, json } => {
            let Some(post) = herald.store.post(PostId(id)).await? else {
                bail!("no post with id {id} (see `herald posts list`)");
            };
            let related = herald.store.related_posts(post.id).await?;
            let summary_source = herald.store.summary_source(post.id).await?;
            if json {
                let mut value = serde_json::to_value(&post)?;
                value["summary_source"] = serde_json::json!(summary_source);
                value["related"] = serde_json::to_value(&related)?;
                serde_json::to_writer_pretty(&mut out, &value)?;
                writeln!(out)?;
            } else {
                write_post(&mut out, &post, summary_source.as_deref(), &related)?;
            }
        }
    }
    herald.store.close().await;
    Ok(Outcome::Success)
}

fn write_post(
    out: &mut impl Write,
    post: &Post,
    summary_source: Option<&str>,
    related: &[RelatedPost],
) -> std::io::Result<()> {
    writeln!(out, "{}", post.title)?;
    writeln!(out, "{}", "=".repeat(post.title.chars().count().min(78)))?;
    writeln!(out, "id:         {}", post.id)?;
    writeln!(out, "source:     {}", post.source)?;
    writeln!(out, "stable id:  {}", post.stable_id)?;
    if let Some(url) = &post.url {
        writeln!(out, "url:        {url}")?;
    }
    if let Some(author) = &post.author {
        writeln!(out, "author:     {author}")?;
    }
    if !post.tags.is_empty() {
        writeln!(out, "tags:       {}", post.tags.join(", "))?;
    }
    match post.published_at {
        Some(at) => writeln!(out, "published:  {}", at.to_rfc3339())?,
        None => writeln!(out, "published:  (not given by the feed)")?,
    }
    writeln!(out, "first seen: {}", post.first_seen_at.to_rfc3339())?;
    if post.recovered {
        writeln!(out, "read:       recovered from a malformed document")?;
    }
    if let Some(image) = &post.image {
        writeln!(out, "image:      {image}")?;
    }
    writeln!(out)?;
    match &post.summary {
        Some(summary) => {
            let how = match summary_source {
                Some("feed") => "from the feed",
                Some("whole") => "the whole post",
                _ => "extracted",
            };
            writeln!(
                out,
                "Summary ({} words, {how}):",
                summary.split_whitespace().count()
            )?;
            writeln!(out, "{}", indent(&wrap(summary, 76), "  "))?;
        }
        None => writeln!(out, "Summary: not written yet (run `herald enrich`)")?,
    }
    writeln!(out)?;
    if related.is_empty() {
        writeln!(out, "Related: none")?;
    } else {
        writeln!(out, "Related:")?;
        for r in related {
            writeln!(out, "  {:.2}  #{}  {}", r.score, r.id, r.title)?;
            if let Some(url) = &r.url {
                writeln!(out, "              {url}")?;
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "Text:")?;
    for line in post.text.lines() {
        writeln!(out, "{}", wrap(line, 78))?;
        writeln!(out)?;
    }
    Ok(())
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Wraps a line of text at word boundaries.
fn wrap(line: &str, width: usize) -> String {
    textwrap::fill(line, textwrap::Options::new(width).break_words(false))
}
