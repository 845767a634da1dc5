//! A walker over the spanned TOML tree that collects every problem instead of stopping at
//! the first one.
//!
//! serde with `deny_unknown_fields` stops at the first bad key, so an operator fixes one
//! typo per run. Here each accessor records a [`Problem`] (file, line, key path, message
//! naming the bad value) and returns `None`; [`TableReader::finish`] reports every key
//! nobody asked for. The typed [`Config`](super::Config) is built only when no problem was
//! recorded.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One thing wrong with the config, located at a line and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    /// Dotted key path, e.g. `sources[1].url`; empty for a problem with the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file, self.line, self.key, self.message
            )
        }
    }
}

/// Collects problems and turns byte offsets into line numbers.
#[derive(Debug)]
pub struct Problems {
    file: String,
    line_starts: Vec<usize>,
    list: Vec<Problem>,
}

impl Problems {
    pub fn new(file: &str, source: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file: file.to_owned(),
            line_starts,
            list: Vec::new(),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    pub fn at(&mut self, span: &Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let line = self.line_of(span.start);
        self.at_line(line, key, message);
    }

    pub fn at_line(&mut self, line: usize, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            file: self.file.clone(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems in file order.
    pub fn into_sorted(mut self) -> Vec<Problem> {
        self.list
            .sort_by(|a, b| a.line.cmp(&b.line).then_with(|| a.key.cmp(&b.key)));
        self.list
    }
}

/// A value read from the file, with where it was.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub key: String,
    pub span: Range<usize>,
}

/// Reads one TOML table, remembering which keys were asked for.
pub struct TableReader<'a, 'i> {
    path: String,
    table: &'a DeTable<'i>,
    span: Range<usize>,
    asked: Vec<&'static str>,
    /// The section is not in the file at all (a stand-in, so defaults apply).
    absent: bool,
}

impl<'a, 'i> TableReader<'a, 'i> {
    pub fn root(table: &'a Spanned<DeTable<'i>>) -> Self {
        Self {
            path: String::new(),
            table: table.get_ref(),
            span: table.span(),
            asked: Vec::new(),
            absent: false,
        }
    }

    fn child(path: String, table: &'a DeTable<'i>, span: Range<usize>) -> Self {
        Self {
            path,
            table,
            span,
            asked: Vec::new(),
            absent: false,
        }
    }

    /// A stand-in for a section the file does not have; every key reads as absent.
    pub fn absent(empty: &'a DeTable<'i>, path: &str) -> Self {
        Self {
            path: path.to_owned(),
            table: empty,
            span: 0..0,
            asked: Vec::new(),
            absent: true,
        }
    }

    pub fn is_absent(&self) -> bool {
        self.absent
    }

    /// Where a key's value is, if the key is present.
    pub fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v.span())
    }

    /// A string value without marking the key as read (for checks across tables).
    pub fn peek_str(&self, key: &str) -> Option<String> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .and_then(|(_, v)| match v.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                _ => None,
            })
    }

    /// Whether the key is present (whatever its type).
    pub fn has(&self, key: &str) -> bool {
        self.table.iter().any(|(k, _)| k.get_ref().as_ref() == key)
    }

    /// The dotted path of a key in this table.
    pub fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.asked.push(key);
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    fn wrong_type(&self, p: &mut Problems, key: &str, v: &Spanned<DeValue<'_>>, expected: &str) {
        p.at(
            &v.span(),
            self.key(key),
            format!("expected {expected}, found {}", v.get_ref().type_str()),
        );
    }

    /// Reports a required key that is absent, at the line of this table.
    pub fn missing(&self, p: &mut Problems, key: &str) {
        if self.absent {
            return; // the missing section is reported instead
        }
        let where_ = if self.path.is_empty() {
            String::new()
        } else {
            format!(" in [{}]", self.path)
        };
        p.at(
            &self.span,
            self.key(key),
            format!("missing required key `{key}`{where_}"),
        );
    }

    pub fn string(&mut self, p: &mut Problems, key: &'static str) -> Option<Located<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Located {
                value: s.to_string(),
                key: self.key(key),
                span: v.span(),
            }),
            _ => {
                self.wrong_type(p, key, v, "a string");
                None
            }
        }
    }

    pub fn required_string(
        &mut self,
        p: &mut Problems,
        key: &'static str,
    ) -> Option<Located<String>> {
        let present = self.has(key);
        let value = self.string(p, key);
        if !present {
            self.missing(p, key);
        }
        value
    }

    /// A string turned into `T` by `parse`; its error message is reported at the value.
    pub fn parsed<T>(
        &mut self,
        p: &mut Problems,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Located<T>> {
        let s = self.string(p, key)?;
        match parse(&s.value) {
            Ok(value) => Some(Located {
                value,
                key: s.key,
                span: s.span,
            }),
            Err(message) => {
                p.at(&s.span, s.key, message);
                None
            }
        }
    }

    pub fn bool(&mut self, p: &mut Problems, key: &'static str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(p, key, v, "true or false");
                None
            }
        }
    }

    /// An integer within `range` (inclusive).
    pub fn integer(
        &mut self,
        p: &mut Problems,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let v = self.get(key)?;
        let DeValue::Integer(i) = v.get_ref() else {
            self.wrong_type(p, key, v, "an integer");
            return None;
        };
        let text = i.as_str().replace('_', "");
        let parsed = match i64::from_str_radix(&text, i.radix()) {
            Ok(n) => n,
            Err(_) => {
                p.at(
                    &v.span(),
                    self.key(key),
                    format!("{} is not a valid integer", i.as_str()),
                );
                return None;
            }
        };
        if !range.contains(&parsed) {
            p.at(
                &v.span(),
                self.key(key),
                format!(
                    "{parsed} is out of range ({}..={})",
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        Some(parsed)
    }

    /// A number (integer or float) within `range`.
    pub fn number(
        &mut self,
        p: &mut Problems,
        key: &'static str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Option<f64> {
        let v = self.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            _ => {
                self.wrong_type(p, key, v, "a number");
                return None;
            }
        };
        match parsed {
            Some(n) if range.contains(&n) => Some(n),
            Some(n) => {
                p.at(
                    &v.span(),
                    self.key(key),
                    format!("{n} is out of range ({}..={})", range.start(), range.end()),
                );
                None
            }
            None => {
                p.at(&v.span(), self.key(key), "not a valid number");
                None
            }
        }
    }

    /// A duration: a string such as `"90s"`, `"15m"`, `"2h"`, `"1d"` (or combined, `"1h30m"`),
    /// or an integer number of seconds.
    pub fn duration(&mut self, p: &mut Problems, key: &'static str) -> Option<Duration> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => match i.as_str().replace('_', "").parse::<u64>() {
                Ok(secs) => Some(Duration::from_secs(secs)),
                Err(_) => {
                    p.at(
                        &v.span(),
                        self.key(key),
                        format!("{} is not a valid number of seconds", i.as_str()),
                    );
                    None
                }
            },
            DeValue::String(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(message) => {
                    p.at(&v.span(), self.key(key), message);
                    None
                }
            },
            _ => {
                self.wrong_type(p, key, v, "a duration such as \"30s\" or \"15m\"");
                None
            }
        }
    }

    /// A byte size: a string such as `"10MiB"`, `"512KiB"`, `"1MB"`, or an integer of bytes.
    pub fn size(&mut self, p: &mut Problems, key: &'static str) -> Option<u64> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => match i.as_str().replace('_', "").parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    p.at(
                        &v.span(),
                        self.key(key),
                        format!("{} is not a valid byte count", i.as_str()),
                    );
                    None
                }
            },
            DeValue::String(s) => match parse_size(s) {
                Ok(n) => Some(n),
                Err(message) => {
                    p.at(&v.span(), self.key(key), message);
                    None
                }
            },
            _ => {
                self.wrong_type(p, key, v, "a size such as \"10MiB\"");
                None
            }
        }
    }

    /// An array of strings.
    pub fn strings(&mut self, p: &mut Problems, key: &'static str) -> Option<Vec<Located<String>>> {
        let v = self.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(p, key, v, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{}[{i}]", self.key(key));
            match item.get_ref() {
                DeValue::String(s) => out.push(Located {
                    value: s.to_string(),
                    key: item_key,
                    span: item.span(),
                }),
                other => p.at(
                    &item.span(),
                    item_key,
                    format!("expected a string, found {}", other.type_str()),
                ),
            }
        }
        Some(out)
    }

    /// A sub-table (`[section]`).
    pub fn table(&mut self, p: &mut Problems, key: &'static str) -> Option<TableReader<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Self::child(self.key(key), t, v.span())),
            _ => {
                self.wrong_type(p, key, v, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[section]]`).
    pub fn tables(&mut self, p: &mut Problems, key: &'static str) -> Vec<TableReader<'a, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(p, key, v, "an array of tables ([[...]])");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.key(key));
            match item.get_ref() {
                DeValue::Table(t) => out.push(Self::child(path, t, item.span())),
                other => p.at(
                    &item.span(),
                    path,
                    format!("expected a table, found {}", other.type_str()),
                ),
            }
        }
        out
    }

    /// Rejects the key outright (used for secrets that belong in the environment).
    pub fn forbid(&mut self, p: &mut Problems, key: &'static str, message: &str) {
        if let Some(v) = self.get(key) {
            p.at(&v.span(), self.key(key), message.to_owned());
        }
    }

    /// Reports every key in this table that no accessor asked for.
    pub fn finish(self, p: &mut Problems) {
        for (k, v) in self.table.iter() {
            let name = k.get_ref().as_ref();
            if self.asked.contains(&name) {
                continue;
            }
            let mut message = format!("unknown key `{name}`");
            if let Some(close) = closest(name, &self.asked) {
                message.push_str(&format!(" (did you mean `{close}`?)"));
            } else if !self.asked.is_empty() {
                let mut known = self.asked.clone();
                known.sort_unstable();
                known.dedup();
                message.push_str(&format!(" (expected one of: {})", known.join(", ")));
            }
            let span = k.span();
            let span = if span.is_empty() { v.span() } else { span };
            p.at(&span, self.key(name), message);
        }
    }
}

/// The asked-for key nearest to a typo, if it is near enough to be a likely typo.
fn closest<'k>(typo: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        // Optimal string alignment: like Levenshtein, but a swap of two neighbours
        // (`titel` → `title`) counts as one edit.
        .map(|k| (strsim::osa_distance(typo, k), *k))
        .filter(|(d, k)| *d <= if k.len() <= 4 { 1 } else { 2 })
        .min()
        .map(|(_, k)| k)
}

/// Parses `"90s"`, `"15m"`, `"2h"`, `"1d"`, `"1h30m"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("\"{s}\" is not a duration (use e.g. \"30s\", \"15m\", \"2h\", \"1d\")");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            ' ' if digits.is_empty() => continue,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Parses `"10MiB"`, `"512 KiB"`, `"1MB"`, `"2048"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("\"{s}\" is not a size (use e.g. \"512KiB\", \"10MiB\")");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_rejects_garbage() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert!(parse_size("ten megs").is_err());
    }

    #[test]
    fn suggests_the_nearest_key() {
        assert_eq!(closest("titel", &["title", "base_url"]), Some("title"));
        assert_eq!(closest("zzzzzz", &["title", "base_url"]), None);
    }
}
