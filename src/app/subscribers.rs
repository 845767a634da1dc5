//! `herald subscribers …`

use std::io::Write;

use anyhow::{Context, Result, bail};

use super::{Outcome, open};
use crate::cli::SubscribersCommand;
use crate::config::Config;
use crate::domain::{SubscriberEmail, SubscriberStatus};
use crate::store::{AddOutcome, ImportRow};

pub async fn run(config: Config, cmd: SubscribersCommand) -> Result<Outcome> {
    let herald = open(config).await?;
    let now = herald.clock.now();
    let known: Vec<String> = herald
        .config
        .digests
        .iter()
        .map(|d| d.name.clone())
        .collect();
    let mut out = std::io::stdout().lock();
    let outcome = match cmd {
        SubscribersCommand::Add {
            email,
            name,
            digests,
            confirmed,
        } => {
            let email = SubscriberEmail::parse(&email).map_err(anyhow::Error::msg)?;
            let digests = check_digests(digests, &known).map_err(anyhow::Error::msg)?;
            let status = if confirmed {
                SubscriberStatus::Confirmed
            } else {
                SubscriberStatus::Pending
            };
            let result = herald
                .store
                .add_subscriber(&email, name.as_deref(), &digests, status, now)
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
        SubscribersCommand::Import { file, confirmed } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (rows, problems) = parse_import(&text, &known);
            for (line, problem) in &problems {
                eprintln!("{}:{line}: {problem}", file.display());
            }
            let status = if confirmed {
                SubscriberStatus::Confirmed
            } else {
                SubscriberStatus::Pending
            };
            let results = herald.store.add_subscribers(&rows, status, now).await?;
            let count = |f: fn(&AddOutcome) -> bool| results.iter().filter(|r| f(r)).count();
            writeln!(
                out,
                "imported {}: {} added, {} updated, {} unchanged, {} rejected",
                file.display(),
                count(|r| matches!(r, AddOutcome::Added(_))),
                count(|r| matches!(r, AddOutcome::Updated(_))),
                count(|r| matches!(r, AddOutcome::Unchanged(_))),
                problems.len()
            )?;
            if problems.is_empty() {
                Outcome::Success
            } else {
                Outcome::Partial
            }
        }
        SubscribersCommand::List { json } => {
            let subscribers = herald.store.subscribers().await?;
            if json {
                serde_json::to_writer_pretty(&mut out, &subscribers)?;
                writeln!(out)?;
            } else {
                for s in &subscribers {
                    writeln!(
                        out,
                        "{:>6}  {:<12}  {:<32}  {:<20}  {}",
                        s.id,
                        s.status.as_str(),
                        s.email,
                        s.name.as_deref().unwrap_or("-"),
                        s.digests.join(",")
                    )?;
                }
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
        SubscribersCommand::Export => {
            writeln!(out, "email,name,digests,status")?;
            for s in herald.store.subscribers().await? {
                writeln!(
                    out,
                    "{},{},{},{}",
                    csv_field(s.email.as_str()),
                    csv_field(s.name.as_deref().unwrap_or("")),
                    csv_field(&s.digests.join(";")),
                    s.status.as_str()
                )?;
            }
            Outcome::Success
        }
    };
    herald.store.close().await;
    Ok(outcome)
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

/// Parses an import file: columns email,name,digests (digests separated by `;`, `|` or
/// spaces; empty means all digests). A header row is skipped. Returns the good rows and,
/// for each bad one, its line number and what is wrong with it.
pub fn parse_import(text: &str, known: &[String]) -> (Vec<ImportRow>, Vec<(usize, String)>) {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let fields = match split_csv_line(line) {
            Ok(f) => f,
            Err(e) => {
                problems.push((number, e));
                continue;
            }
        };
        if number == 1
            && fields
                .first()
                .is_some_and(|f| f.trim().eq_ignore_ascii_case("email"))
        {
            continue;
        }
        if fields.len() > 3 {
            problems.push((
                number,
                format!(
                    "expected at most 3 columns (email,name,digests), found {}",
                    fields.len()
                ),
            ));
            continue;
        }
        let email = match SubscriberEmail::parse(fields.first().map_or("", String::as_str)) {
            Ok(e) => e,
            Err(e) => {
                problems.push((number, e));
                continue;
            }
        };
        let name = fields
            .get(1)
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
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
        match check_digests(digests, known) {
            Ok(digests) => rows.push((email, name, digests)),
            Err(e) => problems.push((number, e)),
        }
    }
    (rows, problems)
}

/// One CSV line (RFC 4180 quoting; no line breaks inside fields).
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => {
                quoted = true;
                at_start = false;
            }
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            (_, c) => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_csv_fields() {
        assert_eq!(
            split_csv_line(r#"a@b.org,"Smith, Ana","weekly;daily""#).unwrap(),
            vec!["a@b.org", "Smith, Ana", "weekly;daily"]
        );
        assert_eq!(
            split_csv_line(r#""say ""hi""",x"#).unwrap(),
            vec!["say \"hi\"", "x"]
        );
        assert!(split_csv_line(r#""open"#).is_err());
    }

    #[test]
    fn reports_bad_rows_with_their_line_and_keeps_the_rest() {
        let known = vec!["weekly".to_string(), "daily".to_string()];
        let text = "email,name,digests\nana@example.org,Ana,weekly\nnot-an-address,Bob,\ncarl@example.org,,monthly\ndee@example.org,\"Dee, D\",\n";
        let (rows, problems) = parse_import(text, &known);
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
