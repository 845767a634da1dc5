//! `herald subscribers …`

use std::io::Write;

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::{Outcome, open};
use crate::cli::{SubscriberSelection, SubscribersCommand};
use crate::config::Config;
use crate::domain::{SubscriberEmail, SubscriberName, SubscriberStatus, shorten};
use crate::store::{AddOutcome, ImportRow, SubscriberFilter};

pub async fn run(config: Config, cmd: SubscribersCommand, quiet: bool) -> Result<Outcome> {
    let herald = open(config).await?;
    let now = herald.clock.now();
    let known: Vec<String> = herald
        .config
        .digests
        .iter()
        .map(|d| d.name.clone())
        .collect();
    // Buffered: a listing of a million rows is a million lines.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let outcome = match cmd {
        SubscribersCommand::Add {
            email,
            name,
            digests,
            confirmed,
            unsuppress,
        } => {
            let email = SubscriberEmail::parse(&email).map_err(anyhow::Error::msg)?;
            let name = match name {
                Some(n) => SubscriberName::parse(&n).map_err(anyhow::Error::msg)?,
                None => None,
            };
            let digests = check_digests(digests, &known).map_err(anyhow::Error::msg)?;
            let status = if confirmed {
                SubscriberStatus::Confirmed
            } else {
                SubscriberStatus::Pending
            };
            let result = herald
                .store
                .add_subscriber_with(
                    &email,
                    name.as_ref().map(SubscriberName::as_str),
                    &digests,
                    status,
                    unsuppress,
                    now,
                )
                .await?;
            let subscriber = herald
                .store
                .subscriber(result.id())
                .await?
                .context("the subscriber just added is gone")?;
            let verb = match result {
                AddOutcome::Added(_) => "added",
                AddOutcome::Updated(_) => "updated",
                AddOutcome::Unchanged(_) => "unchanged",
                AddOutcome::Suppressed(_) => bail!(
                    "{} is {} ({}) and suppressed: herald does not mail it again. If the address works again and its owner wants the mail, add it with --unsuppress",
                    subscriber.email,
                    subscriber.status.as_str(),
                    subscriber
                        .status_reason
                        .as_deref()
                        .unwrap_or("no reason recorded")
                ),
            };
            writeln!(
                out,
                "{verb}: {} ({}; digests: {})",
                subscriber.email,
                subscriber.status.as_str(),
                subscriber.digests.join(", ")
            )?;
            Outcome::Success
        }
        SubscribersCommand::Import {
            file,
            confirmed,
            unsuppress,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let (rows, problems) = parse_import(&bytes, &known);
            for (line, problem) in &problems {
                eprintln!("{}:{line}: {problem}", file.display());
            }
            let status = if confirmed {
                SubscriberStatus::Confirmed
            } else {
                SubscriberStatus::Pending
            };
            let drawer = super::progress::Drawer::start(Arc::clone(&herald.progress), quiet);
            let results = herald
                .store
                .add_subscribers_with(&rows, status, unsuppress, now, &herald.progress)
                .await;
            drawer.finish().await;
            let results = results?;
            let count = |f: fn(&AddOutcome) -> bool| results.iter().filter(|r| f(r)).count();
            let suppressed = count(|r| matches!(r, AddOutcome::Suppressed(_)));
            writeln!(
                out,
                "imported {}: {} added, {} updated, {} unchanged, {} rejected, {suppressed} suppressed",
                file.display(),
                count(|r| matches!(r, AddOutcome::Added(_))),
                count(|r| matches!(r, AddOutcome::Updated(_))),
                count(|r| matches!(r, AddOutcome::Unchanged(_))),
                problems.len()
            )?;
            if suppressed > 0 {
                eprintln!(
                    "{suppressed} addresses bounced or complained before and were left as they are (see `herald subscribers list --status bounced` and `--status complained`); --unsuppress re-adds them"
                );
            }
            if problems.is_empty() && suppressed == 0 {
                Outcome::Success
            } else {
                Outcome::Partial
            }
        }
        SubscribersCommand::List { json, select } => {
            let filter = selection(select, &known)?;
            let mut failing = 0usize;
            let mut first = true;
            if json {
                write!(out, "[")?;
            }
            let listed = herald
                .store
                .each_subscriber(&filter, |s| {
                    // Rows stored before today's rules: listed, flagged, never fatal.
                    let problem = s.email.check().err().or_else(|| {
                        s.name
                            .as_deref()
                            .and_then(|n| SubscriberName::check_stored(n).err())
                    });
                    if let Some(problem) = problem {
                        failing += 1;
                        if failing <= 20 {
                            eprintln!(
                                "warning: subscriber {}: {problem} (their deliveries fail until it is corrected)",
                                s.email.masked()
                            );
                        }
                    }
                    let written = if json {
                        write_json_item(&mut out, &s, std::mem::take(&mut first))
                    } else {
                        let reason = match &s.status_reason {
                            Some(r) if s.status.is_suppressed() => {
                                format!("  ({})", shorten(&r.escape_debug().to_string(), 120))
                            }
                            _ => String::new(),
                        };
                        writeln!(
                            out,
                            "{:>6}  {:<12}  {:<32}  {:<20}  {}{reason}",
                            s.id,
                            s.status.as_str(),
                            s.email,
                            shorten(
                                &s.name.as_deref().unwrap_or("-").escape_debug().to_string(),
                                40
                            ),
                            s.digests.join(",")
                        )
                    };
                    written.map_err(output_failed)
                })
                .await?;
            if json {
                writeln!(out, "{}]", if listed == 0 { "" } else { "\n" })?;
            }
            if failing > 20 {
                eprintln!(
                    "warning: {} more subscribers fail today's rules",
                    failing - 20
                );
            }
            Outcome::Success
        }
        SubscribersCommand::Remove { email } => {
            let email = SubscriberEmail::parse(&email).map_err(anyhow::Error::msg)?;
            if !herald.store.remove_subscriber(&email).await? {
                bail!("no subscriber {email}");
            }
            writeln!(out, "removed: {email}")?;
            Outcome::Success
        }
        SubscribersCommand::Export {
            select,
            spreadsheet,
        } => {
            let filter = selection(select, &known)?;
            let mut writer = csv::Writer::from_writer(&mut out);
            writer.write_record(["email", "name", "digests", "status"])?;
            let cell = |s: &str| -> String {
                if spreadsheet {
                    spreadsheet_safe(s)
                } else {
                    s.to_owned()
                }
            };
            herald
                .store
                .each_subscriber(&filter, |s| {
                    writer
                        .write_record([
                            cell(s.email.as_str()),
                            cell(s.name.as_deref().unwrap_or("")),
                            cell(&s.digests.join(";")),
                            s.status.as_str().to_owned(),
                        ])
                        .map_err(|e| output_failed(e.into()))
                })
                .await?;
            writer.flush()?;
            Outcome::Success
        }
    };
    out.flush()?;
    herald.store.close().await;
    Ok(outcome)
}

/// The store's filter for `list` and `export`; a digest must be configured.
fn selection(select: SubscriberSelection, known: &[String]) -> Result<SubscriberFilter> {
    if let Some(digest) = &select.digest
        && !known.contains(digest)
    {
        bail!(
            "no digest named \"{}\" (digests: {})",
            digest.escape_debug(),
            known.join(", ")
        );
    }
    Ok(SubscriberFilter {
        status: select.status,
        digest: select.digest,
        limit: select.limit,
    })
}

/// One element of a streamed JSON array, laid out as `serde_json`'s pretty printer lays
/// out a whole array (so a list of any size reads the same as one held in memory).
fn write_json_item(
    out: &mut impl Write,
    item: &impl serde::Serialize,
    first: bool,
) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(item).map_err(std::io::Error::other)?;
    out.write_all(if first { b"\n" } else { b",\n" })?;
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
        }
        out.write_all(b"  ")?;
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Standard output went away (a closed pipe, a full disk): the listing stops there.
fn output_failed(e: std::io::Error) -> crate::store::Error {
    crate::store::Error::Output(e)
}

/// The digests named, or all of them; every name must be configured.
fn check_digests(wanted: Vec<String>, known: &[String]) -> Result<Vec<String>, String> {
    if wanted.is_empty() {
        return Ok(known.to_vec());
    }
    for name in &wanted {
        if !known.contains(name) {
            return Err(format!(
                "no digest named \"{name}\" (digests: {})",
                known.join(", ")
            ));
        }
    }
    Ok(wanted)
}

/// Parses an import file (CSV, RFC 4180 quoting, fields may hold line breaks): columns
/// email,name,digests (digests separated by `;`, `|` or spaces; empty means all digests)
/// and an optional fourth, status: `unsubscribed` and `bounced` are kept (so that an
/// export imports back without re-subscribing anyone), the others follow `--confirmed`. A
/// header row and `#` comment lines are skipped. Returns the good rows and, for each bad
/// one, its line number and what is wrong with it (bad input is quoted shortened).
pub fn parse_import(bytes: &[u8], known: &[String]) -> (Vec<ImportRow>, Vec<(u64, String)>) {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(bytes);
    let mut first = true;
    for record in reader.byte_records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push((line, format!("not readable as CSV: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let mut fields = Vec::with_capacity(record.len());
        let mut bad_encoding = None;
        for (i, field) in record.iter().enumerate() {
            match std::str::from_utf8(field) {
                Ok(f) => fields.push(f),
                Err(_) => {
                    bad_encoding = Some(i + 1);
                    break;
                }
            }
        }
        let is_first = std::mem::take(&mut first);
        if let Some(column) = bad_encoding {
            problems.push((
                line,
                format!("column {column} is not UTF-8 text; save the file as UTF-8"),
            ));
            continue;
        }
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if is_first
            && fields
                .first()
                .is_some_and(|f| f.trim().eq_ignore_ascii_case("email"))
        {
            continue;
        }
        if fields.len() > 4 {
            problems.push((
                line,
                format!(
                    "expected at most 4 columns (email,name,digests,status), found {}",
                    fields.len()
                ),
            ));
            continue;
        }
        let email = match SubscriberEmail::parse(fields.first().copied().unwrap_or("")) {
            Ok(e) => e,
            Err(e) => {
                problems.push((line, e));
                continue;
            }
        };
        let name = match SubscriberName::parse(fields.get(1).copied().unwrap_or("")) {
            Ok(name) => name.map(SubscriberName::into_string),
            Err(e) => {
                problems.push((line, e));
                continue;
            }
        };
        let digests: Vec<String> = fields
            .get(2)
            .map(|d| {
                d.split([';', '|', ' '])
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        // A status column (as `export` writes it) keeps who left out: an unsubscribed or
        // bounced row is imported so, never as confirmed.
        let own = match fields.get(3).map(|s| s.trim()) {
            None | Some("") => None,
            Some(s) => match SubscriberStatus::parse(s) {
                Some(
                    left @ (SubscriberStatus::Unsubscribed
                    | SubscriberStatus::Bounced
                    | SubscriberStatus::Complained),
                ) => Some(left),
                Some(_) => None,
                None => {
                    problems.push((
                        line,
                        format!(
                            "status \"{}\" is not one of pending, confirmed, unsubscribed, bounced, complained",
                            shorten(s, 40)
                        ),
                    ));
                    continue;
                }
            },
        };
        match check_digests(digests, known) {
            Ok(digests) => rows.push((email, name, digests, own)),
            Err(e) => problems.push((line, shorten(&e, 200))),
        }
    }
    (rows, problems)
}

/// A cell a spreadsheet will not run as a formula: a leading `= + - @` (or a tab or
/// carriage return, which some strip first) gets a `'` before it (OWASP's advice on CSV
/// injection).
fn spreadsheet_safe(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_csv_fields_with_commas_quotes_and_line_breaks() {
        let known = vec!["weekly".to_string()];
        let (rows, problems) = parse_import(
            b"a@b.org,\"Smith, Ana\",weekly\nc@d.org,\"say \"\"hi\"\"\",\n",
            &known,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rows[0].1.as_deref(), Some("Smith, Ana"));
        assert_eq!(rows[1].1.as_deref(), Some("say \"hi\""));
        let (_, problems) = parse_import(b"e@f.org,\"two\nlines\",\n", &known);
        assert!(problems[0].1.contains("control characters"), "{problems:?}");
    }

    #[test]
    fn bad_encoding_crlf_names_and_huge_rows_fail_alone_with_their_line() {
        let known = vec!["weekly".to_string()];
        let mut file =
            b"email,name,digests\nana@example.org,Ana,\nbob@example.org,Bj\xf6rn,\n".to_vec();
        file.extend_from_slice(b"mal@example.org,\"Mallory\r\nBcc: x@evil.org\",\n");
        file.extend_from_slice(format!("{}@example.org,,\n", "x".repeat(20_000_000)).as_bytes());
        file.extend_from_slice(b"dee@example.org,Dee,weekly\n");
        let (rows, problems) = parse_import(&file, &known);
        let emails: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(emails, vec!["ana@example.org", "dee@example.org"]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(problems[0].0, 3);
        assert!(problems[0].1.contains("not UTF-8"), "{}", problems[0].1);
        assert_eq!(problems[1].0, 4);
        assert!(problems[1].1.contains("control characters"));
        assert_eq!(problems[2].0, 6);
        assert!(
            problems[2].1.len() < 300,
            "a huge row is not echoed in full"
        );
    }

    #[test]
    fn the_export_format_imports_back() {
        let known = vec!["weekly".to_string(), "daily".to_string()];
        let mut out = Vec::new();
        {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(["email", "name", "digests", "status"])
                .unwrap();
            w.write_record([
                "=a@b.org",
                "\"Quoted\", =SUM(A1)",
                "weekly;daily",
                "confirmed",
            ])
            .unwrap();
        }
        let (rows, problems) = parse_import(&out, &known);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rows[0].0.as_str(), "=a@b.org");
        assert_eq!(rows[0].1.as_deref(), Some("\"Quoted\", =SUM(A1)"));
        assert_eq!(rows[0].2, known);
        assert_eq!(rows[0].3, None);
        let (rows, _) = parse_import(
            b"gone@b.org,,,unsubscribed\nb@b.org,,,bounced\nc@b.org,,,pending\n",
            &known,
        );
        assert_eq!(rows[0].3, Some(SubscriberStatus::Unsubscribed));
        assert_eq!(rows[1].3, Some(SubscriberStatus::Bounced));
        assert_eq!(rows[2].3, None);
        assert_eq!(spreadsheet_safe("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(spreadsheet_safe("@x"), "'@x");
        assert_eq!(spreadsheet_safe("Ana"), "Ana");
    }

    #[test]
    fn reports_bad_rows_with_their_line_and_keeps_the_rest() {
        let known = vec!["weekly".to_string(), "daily".to_string()];
        let text = "email,name,digests\nana@example.org,Ana,weekly\nnot-an-address,Bob,\ncarl@example.org,,monthly\ndee@example.org,\"Dee, D\",\n";
        let (rows, problems) = parse_import(text.as_bytes(), &known);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].2, vec!["weekly"]);
        assert_eq!(rows[1].1.as_deref(), Some("Dee, D"));
        assert_eq!(rows[1].2, known, "no digests means all of them");
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].0, 3);
        assert!(problems[0].1.contains("not-an-address"));
        assert_eq!(problems[1].0, 4);
        assert!(problems[1].1.contains("no digest named \"monthly\""));
    }
}
