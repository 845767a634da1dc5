//! Small text transforms around templates: `.length` support and plain-text layout.

/// Rewrites `{{list.length}}` to `{{len list}}` and `(… list.length …)` uses inside
/// mustaches to `(len list)`: Handlebars.js has `.length`, handlebars-rust has `len`.
pub fn length_to_len(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inside = &rest[open + 2..open + close];
        out.push_str("{{");
        out.push_str(&rewrite_expression(inside));
        out.push_str("}}");
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

fn rewrite_expression(inside: &str) -> String {
    if !inside.contains(".length") {
        return inside.to_owned();
    }
    let mut out = String::new();
    let chars: Vec<char> = inside.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let is_path_char =
            |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '/' | '-');
        if is_path_char(chars[i]) && (i == 0 || !is_path_char(chars[i - 1])) {
            let start = i;
            while i < chars.len() && is_path_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match word.strip_suffix(".length") {
                Some(path) if !path.is_empty() => out.push_str(&format!("(len {path})")),
                _ => out.push_str(&word),
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    // A mustache that is only `(len x)` becomes the helper call `len x`.
    let trimmed = out.trim();
    if let Some(inner) = trimmed
        .strip_prefix("(len ")
        .and_then(|s| s.strip_suffix(')'))
        && !inner.contains(['(', ')', ' '])
    {
        return format!("len {inner}");
    }
    out
}

/// Lays out rendered plain text for a terminal: lines wrapped at `width` columns at word
/// boundaries (continuation lines keep the indentation of the text, so list items stay
/// aligned), words longer than a line (URLs) kept whole, trailing spaces removed, and runs
/// of blank lines folded into one.
pub fn layout_text(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run == 1 && !out.is_empty() {
                out.push('\n');
            }
            continue;
        }
        blank_run = 0;
        wrap_line(line, width, &mut out);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn wrap_line(line: &str, width: usize, out: &mut String) {
    if line.chars().count() <= width {
        out.push_str(line);
        out.push('\n');
        return;
    }
    let indent_len = line.len() - line.trim_start().len();
    let body = &line[indent_len..];
    // A list marker ("* ", "- ") hangs: continuation lines start under the text.
    let marker = ["* ", "- ", "\u{2022} "]
        .iter()
        .find(|m| body.starts_with(**m))
        .map_or(0, |m| m.len());
    let first_prefix = &line[..indent_len + marker];
    let next_prefix = " ".repeat(first_prefix.chars().count());
    let options = textwrap::Options::new(width)
        .initial_indent(first_prefix)
        .subsequent_indent(&next_prefix)
        .break_words(false);
    for wrapped in textwrap::wrap(&body[marker..], options) {
        out.push_str(wrapped.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_length_in_mustaches_only() {
        assert_eq!(length_to_len("{{posts.length}} new"), "{{len posts}} new");
        assert_eq!(
            length_to_len("{{#if posts.length}}x{{/if}}"),
            "{{#if (len posts)}}x{{/if}}"
        );
        assert_eq!(
            length_to_len("{{site.title}}: {{ posts.length }}"),
            "{{site.title}}: {{len posts}}"
        );
        assert_eq!(
            length_to_len("the .length of {{x}}"),
            "the .length of {{x}}"
        );
        assert_eq!(
            length_to_len("{{#each posts}}{{related.length}}{{/each}}"),
            "{{#each posts}}{{len related}}{{/each}}"
        );
    }

    #[test]
    fn wraps_long_lines_at_word_boundaries_keeping_indentation() {
        let text = format!(
            "{}\n  * {}\n",
            "word ".repeat(30).trim(),
            "item ".repeat(20).trim()
        );
        let laid = layout_text(&text, 30);
        for line in laid.lines() {
            assert!(line.chars().count() <= 30, "{line:?}");
        }
        assert!(laid.contains("\n  * item"));
        assert!(laid.contains("\n    item"), "{laid}");
    }

    #[test]
    fn keeps_long_urls_whole_and_folds_blank_lines() {
        let url = format!("https://example.org/{}", "a".repeat(100));
        let laid = layout_text(&format!("Read: {url}\n\n\n\nnext\n\n"), 78);
        assert_eq!(laid, format!("Read:\n{url}\n\nnext\n"));
    }
}
