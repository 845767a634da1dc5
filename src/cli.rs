//! The command line, as the user typed it (clap derive). [`crate::app`] turns it into work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// herald: feeds in, digest emails and an outgoing feed out.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file [default: config/herald.toml]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "HERALD_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// No progress on stderr (long commands show it: a bar on a terminal, else a line
    /// every few seconds)
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Which subscribers `list` and `export` read.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SubscriberSelection {
    /// Only subscribers in this status: pending, confirmed, unsubscribed, bounced or complained
    #[arg(long, value_parser = parse_status)]
    pub status: Option<crate::domain::SubscriberStatus>,
    /// Only subscribers of this digest
    #[arg(long)]
    pub digest: Option<String>,
    /// At most this many (the lowest ids first)
    #[arg(long)]
    pub limit: Option<u64>,
}

fn parse_status(s: &str) -> Result<crate::domain::SubscriberStatus, String> {
    crate::domain::SubscriberStatus::parse(s.trim()).ok_or_else(|| {
        format!("no status {s:?} (statuses: pending, confirmed, unsubscribed, bounced, complained)")
    })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config file and list every problem in it
    CheckConfig {
        /// Also try the SMTP relay (connect, STARTTLS, login; no mail) and fetch every
        /// source, and say what works
        #[arg(long)]
        connect: bool,
    },
    /// Fetch sources now and store their new and edited posts
    Poll(PollArgs),
    /// Write summaries and related posts for posts that need them
    Enrich(EnrichArgs),
    /// Inspect stored posts
    #[command(subcommand)]
    Posts(PostsCommand),
    /// Manage subscribers
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
    /// Send, preview and inspect digest emails
    #[command(subcommand)]
    Digest(DigestCommand),
    /// Write the outgoing feeds
    #[command(subcommand)]
    Feed(FeedCommand),
    /// Do everything once now (poll, enrich, feeds, due digests), then exit
    Run {
        /// Send this digest now, whatever its schedule says
        #[arg(long, value_name = "NAME")]
        digest: Option<String>,
    },
    /// One screen: sources, digests, subscribers and the store
    Status {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// DKIM keys
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// Bounces, complaints and mailto unsubscribes that come back to the bounce address
    #[command(subcommand)]
    Bounces(BouncesCommand),
    /// Run the daemon: poll and send on schedule, serve feeds and subscription pages
    Serve {
        /// Address to listen on [default: http.listen]
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Read one message (a file, or standard input for an MTA's pipe or a .forward), or
    /// every new message of a Maildir, and act on the bounces (RFC 3464 DSNs and the
    /// common plain-text ones), complaints (ARF) and mailto unsubscribes that carry
    /// herald's signed token. Anything else is left for a person. Exits 0 when the
    /// message was processed or filed, 75 when the store cannot be used (the MTA retries)
    Read {
        /// The message file, or - for standard input [default: standard input]
        #[arg(value_name = "FILE|-", conflicts_with = "maildir")]
        file: Option<PathBuf>,
        /// Read every message in DIR/new; processed ones move to DIR/cur, flagged seen
        #[arg(long, value_name = "DIR")]
        maildir: Option<PathBuf>,
        /// The envelope recipient, as the MTA gives it (Postfix: ${original_recipient})
        #[arg(long, value_name = "ADDR", conflicts_with = "maildir")]
        recipient: Option<String>,
        /// Read the signing secret from this file instead of HERALD_SECRET (an MTA's
        /// pipe runs herald with an empty environment); a second line is the previous
        /// secret, as HERALD_SECRET_PREVIOUS
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// Maildir where a message that is not for herald is filed for a person
        /// [default: held-mail/ beside the store]
        #[arg(long, value_name = "DIR", conflicts_with = "maildir")]
        hold: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Write a new private key (PEM, readable by its owner only) and print the DNS TXT
    /// record to publish and the `[smtp.dkim]` lines to add (needs no config file)
    Keygen {
        /// The selector: the key is published at <SELECTOR>._domainkey.<DOMAIN>
        #[arg(long)]
        selector: String,
        /// The signing domain, normally the domain of smtp.from
        #[arg(long)]
        domain: String,
        /// rsa-sha256 (2048 bits, every receiver checks it) or ed25519-sha256 (RFC 8463)
        #[arg(long, default_value = "rsa-sha256")]
        algorithm: String,
        /// Where to write the key [default: dkim-<SELECTOR>.pem]; an existing file is
        /// never overwritten
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Write feed.xml (RSS 2.0), atom.xml and feed.json; unchanged files are left alone
    Write {
        /// Where to write them [default: feed.out_dir]
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Add a subscriber (or add digests to a known one)
    Add {
        email: String,
        /// Their name, used in greetings
        #[arg(long)]
        name: Option<String>,
        /// A digest they receive; repeat for several [default: every configured digest]
        #[arg(long = "digest", value_name = "NAME")]
        digests: Vec<String>,
        /// Mark the address confirmed (they opted in elsewhere); otherwise pending
        #[arg(long)]
        confirmed: bool,
        /// Re-add an address that bounced or complained (suppressed): only when you know
        /// it works again and its owner wants the mail
        #[arg(long)]
        unsuppress: bool,
    },
    /// Import subscribers from a CSV file with columns email,name,digests[,status] (an
    /// unsubscribed, bounced or complained status, as `export` writes it, is kept; a
    /// known bounced or complained address is never re-added without --unsuppress)
    Import {
        file: PathBuf,
        /// Mark imported addresses confirmed; otherwise pending
        #[arg(long)]
        confirmed: bool,
        /// Re-add known addresses that bounced or complained (suppressed)
        #[arg(long)]
        unsuppress: bool,
    },
    /// List subscribers, by id (streamed: any list size, constant memory)
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        select: SubscriberSelection,
    },
    /// Delete a subscriber and their delivery history
    Remove { email: String },
    /// Write subscribers as CSV (email,name,digests,status) to standard output, all of
    /// them unless filtered
    Export {
        #[command(flatten)]
        select: SubscriberSelection,
        /// Make the file safe to open in a spreadsheet: a cell that starts with = + - @
        /// gets a leading ' (the plain export round-trips exactly; this one does not)
        #[arg(long)]
        spreadsheet: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Create this period's issue and send it (resumes an issue still sending)
    Send {
        name: String,
        /// Send an issue now, whatever the schedule says
        #[arg(long)]
        force: bool,
        /// Do not poll the sources first
        #[arg(long)]
        no_poll: bool,
    },
    /// Render the next issue to files without sending or recording anything
    Preview {
        name: String,
        /// Where to write NAME.html, NAME.txt and NAME.eml
        #[arg(long, default_value = "preview")]
        out_dir: PathBuf,
    },
    /// Show the latest issue and its delivery ledger
    Status { name: String },
}

#[derive(Debug, Args)]
pub struct EnrichArgs {
    /// Recompute every summary and rebuild the related-posts index from scratch
    #[arg(long)]
    pub rebuild: bool,
}

#[derive(Debug, Args)]
pub struct PollArgs {
    /// Poll only this source (by name)
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PostsCommand {
    /// List posts, newest first
    List {
        /// Only posts from this source
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// At most this many posts
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one post in full
    Show {
        /// The post's id (first column of `posts list`)
        id: i64,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}
