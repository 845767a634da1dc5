//! A short plain-text summary for every post.
//!
//! In: the post's title, plain text (one block per line) and the summary its feed gave.
//! Out: at most `budget` words, plain text, ending at a sentence end (or "…" when one
//! sentence alone is over the budget).
//!
//! The feed's own summary is used when it is a real one: not boilerplate ("The post X
//! appeared first on Y", "Continue reading →", "Read more", "[…]") and not merely the
//! start of the content cut off. Otherwise the summary is extractive: sentences are scored
//! by their similarity to the post's centroid (stemmed terms, stop words dropped), with a
//! bonus for the lead and for sharing words with the title; the best that fit the budget
//! are kept in their original order. Nothing here is stored or fetched.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::clutter;
use super::text::Analyzer;
use crate::domain::{PostSummary, SummarySource, Terms};

/// Writes the summary of one post.
pub fn summarize(
    analyzer: &Analyzer,
    title: &str,
    text: &str,
    feed_summary: Option<&str>,
    budget: usize,
) -> PostSummary {
    summarize_and_index(analyzer, title, &[], text, feed_summary, budget).0
}

/// The summary of one post and its weighted index terms
/// ([`Analyzer::post_terms`] of the title, tags and `text`), reading the text once.
pub fn summarize_and_index(
    analyzer: &Analyzer,
    title: &str,
    tags: &[String],
    text: &str,
    feed_summary: Option<&str>,
    budget: usize,
) -> (PostSummary, Terms) {
    let blocks = text_blocks(text);
    let sentences: Vec<&str> = blocks.iter().flat_map(|b| split_sentences(b)).collect();
    analyzer.with_term_ids(|ids| {
        let title_ids = ids.ids(title);
        // Every sentence's ids in one buffer, each sentence a range of it.
        let mut flat: Vec<u32> = Vec::with_capacity(text.len() / 8);
        let mut ends: Vec<usize> = Vec::with_capacity(sentences.len());
        for sentence in &sentences {
            ids.extend_ids(sentence, &mut flat);
            ends.push(flat.len());
        }
        let sentence_ids: Vec<&[u32]> = ends
            .iter()
            .scan(0, |start, end| {
                let ids = &flat[*start..*end];
                *start = *end;
                Some(ids)
            })
            .collect();
        let terms = ids.post_terms(&title_ids, tags, sentence_ids.iter().copied());
        let summary = choose(
            title,
            &title_ids,
            text,
            &sentences,
            &sentence_ids,
            feed_summary,
            budget,
        );
        (summary, terms)
    })
}

/// The feed's summary when it is a real one, else the text's best sentences.
fn choose(
    title: &str,
    title_ids: &[u32],
    text: &str,
    sentences: &[&str],
    sentence_ids: &[&[u32]],
    feed_summary: Option<&str>,
    budget: usize,
) -> PostSummary {
    if let Some(given) = feed_summary.and_then(|s| usable_feed_summary(s, text)) {
        return PostSummary {
            text: fit(&given, budget),
            source: SummarySource::Feed,
        };
    }
    let prose: Vec<usize> = (0..sentences.len())
        .filter(|i| is_prose(sentences[*i]))
        .collect();
    let candidates: Vec<usize> = if prose.is_empty() {
        (0..sentences.len()).collect()
    } else {
        prose
    };
    if candidates.is_empty() {
        return PostSummary {
            text: fit(&clean(title), budget),
            source: SummarySource::Whole,
        };
    }
    let total: usize = candidates.iter().map(|i| word_count(sentences[*i])).sum();
    if total <= budget {
        let joined = candidates
            .iter()
            .map(|i| terminated(sentences[*i]))
            .collect::<Vec<_>>()
            .join(" ");
        return PostSummary {
            text: clean(&joined),
            source: SummarySource::Whole,
        };
    }
    let texts: Vec<&str> = candidates.iter().map(|i| sentences[*i]).collect();
    let ids: Vec<&[u32]> = candidates.iter().map(|i| sentence_ids[*i]).collect();
    PostSummary {
        text: extract(title_ids, &texts, &ids, budget),
        source: SummarySource::Extract,
    }
}

/// The blocks of a post's text: each line (a block of the HTML) on its own, cleaned
/// first so that words are counted as they will be shown.
fn text_blocks(text: &str) -> Vec<Cow<'_, str>> {
    let mut blocks: Vec<Cow<'_, str>> = Vec::new();
    for line in text.lines().map(clean_cow) {
        if line.is_empty() {
            continue;
        }
        // Hard-wrapped plain text (a line break every 72 columns) runs on: a long line
        // that stops mid-sentence and a next line that starts in lower case are one.
        if let Some(last) = blocks.last_mut()
            && !ends_sentence(last)
            && !last.ends_with(':')
            && word_count(last) >= WRAPPED_LINE_MIN_WORDS
            && line.starts_with(|c: char| c.is_lowercase())
        {
            let last = last.to_mut();
            last.push(' ');
            last.push_str(&line);
            continue;
        }
        blocks.push(line);
    }
    blocks
}

/// Shortest line taken for a wrapped line of prose rather than a list item or label.
const WRAPPED_LINE_MIN_WORDS: usize = 6;

/// Chooses the best sentences that fit the budget and returns them in text order.
fn extract(title_terms: &[u32], sentences: &[&str], ids: &[&[u32]], budget: usize) -> String {
    let words: Vec<usize> = sentences.iter().map(|s| word_count(s)).collect();
    // Each sentence's terms as (term, count), sorted by term.
    let terms: Vec<Vec<(u32, f64)>> = ids
        .iter()
        .map(|sentence| {
            let mut sentence = sentence.to_vec();
            sentence.sort_unstable();
            let mut counts: Vec<(u32, f64)> = Vec::with_capacity(sentence.len());
            for t in sentence {
                match counts.last_mut() {
                    Some((last, c)) if *last == t => *c += 1.0,
                    _ => counts.push((t, 1.0)),
                }
            }
            counts
        })
        .collect();
    let mut centroid: FxHashMap<u32, f64> =
        FxHashMap::with_capacity_and_hasher(terms.iter().map(Vec::len).sum(), Default::default());
    for sentence in &terms {
        for (t, c) in sentence {
            *centroid.entry(*t).or_default() += c;
        }
    }
    let centroid_norm = centroid
        .values()
        .map(|v| v * v)
        .sum::<f64>()
        .sqrt()
        .max(1e-9);

    let mut scored: Vec<(f64, usize)> = terms
        .iter()
        .enumerate()
        .map(|(i, counts)| {
            let norm = counts.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
            let similarity = if norm == 0.0 {
                0.0
            } else {
                counts
                    .iter()
                    .map(|(t, c)| c * centroid.get(t).copied().unwrap_or(0.0))
                    .sum::<f64>()
                    / (norm * centroid_norm)
            };
            let title_overlap = if title_terms.is_empty() {
                0.0
            } else {
                title_terms
                    .iter()
                    .filter(|t| counts.binary_search_by_key(*t, |(id, _)| *id).is_ok())
                    .count() as f64
                    / title_terms.len() as f64
            };
            // The lead usually states what the post is about; the bonus fades quickly.
            let lead = 0.25 / (1.0 + i as f64);
            // Very short sentences say little; very long ones eat the budget.
            let length = if words[i] < 6 { -0.15 } else { 0.0 };
            (similarity + 0.2 * title_overlap + lead + length, i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

    let mut chosen: Vec<usize> = Vec::new();
    let mut used = 0;
    for (_, i) in &scored {
        if used + words[*i] <= budget {
            chosen.push(*i);
            used += words[*i];
        }
        if used == budget {
            break; // every sentence has a word
        }
    }
    if chosen.is_empty() {
        // Even the best sentence is over the budget: cut it at a word boundary.
        return fit(sentences[scored[0].1], budget);
    }
    chosen.sort_unstable();
    clean(
        &chosen
            .iter()
            .map(|i| terminated(sentences[*i]))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// A feed summary worth keeping, cleaned of boilerplate; `None` when it is boilerplate
/// alone or just the content's opening cut short.
fn usable_feed_summary(summary: &str, content: &str) -> Option<String> {
    let (stripped, had_cut_marker) = clutter::clean_summary(&clean(summary));
    if word_count(&stripped) < 4 {
        return None;
    }
    let content_words: Vec<String> = normalized_words(content);
    let summary_words: Vec<String> = normalized_words(&stripped);
    // The content's opening, possibly cut inside its last word ("…on Tues").
    let is_prefix = content_words.len() > summary_words.len()
        && match summary_words.split_last() {
            Some((last, whole)) => {
                content_words.starts_with(whole)
                    && content_words[whole.len()].starts_with(last.as_str())
            }
            None => false,
        };
    let ends_cleanly = stripped.ends_with(['.', '!', '?', '"', '\u{201d}', ')']);
    if is_prefix && (had_cut_marker || !ends_cleanly) {
        return None; // the start of the content, cut off
    }
    Some(stripped)
}

/// Lower-case words without punctuation, for comparing a summary with the content.
fn normalized_words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// A sentence with terminal punctuation (a list item or fragment gets a period).
fn terminated(s: &str) -> String {
    let s = s.trim();
    if ends_sentence(s) {
        s.to_owned()
    } else {
        format!("{s}.")
    }
}

fn ends_sentence(s: &str) -> bool {
    let core = s.trim_end_matches(['"', '\'', '\u{201d}', '\u{2019}', ')', ']', '\u{300d}']);
    core.ends_with([
        '.', '!', '?', '\u{2026}', '\u{3002}', '\u{ff01}', '\u{ff1f}',
    ])
}

/// Scripts written without spaces between words (kana, Han, Thai, Lao, Myanmar, Khmer).
fn is_unspaced(c: char) -> bool {
    matches!(c,
        '\u{0e00}'..='\u{0eff}'
            | '\u{1000}'..='\u{109f}'
            | '\u{1780}'..='\u{17ff}'
            | '\u{3040}'..='\u{30ff}'
            | '\u{3400}'..='\u{4dbf}'
            | '\u{4e00}'..='\u{9fff}'
            | '\u{f900}'..='\u{faff}')
}

/// Words in one run of non-space text: one, or for unspaced scripts one per two of their
/// characters, so that a budget in words bounds a Japanese or Thai summary too.
fn token_words(token: &str) -> usize {
    if token.is_ascii() {
        return 1;
    }
    let unspaced = token.chars().filter(|c| is_unspaced(*c)).count();
    unspaced.div_ceil(2).max(1)
}

/// Prose rather than a heading or a label: it ends like a sentence, or is long.
fn is_prose(s: &str) -> bool {
    ends_sentence(s) || word_count(s) >= 12
}

fn word_count(s: &str) -> usize {
    s.split_whitespace().map(token_words).sum()
}

/// Cuts text to the budget: whole sentences when possible, else words and "…".
fn fit(text: &str, budget: usize) -> String {
    let text = clean(text);
    if word_count(&text) <= budget {
        return if ends_sentence(&text) || text.is_empty() {
            text
        } else {
            format!("{text}.")
        };
    }
    let mut out = String::new();
    let mut used = 0;
    for sentence in split_sentences(&text) {
        let words = word_count(sentence);
        if used + words > budget {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&terminated(sentence));
        used += words;
    }
    if !out.is_empty() {
        return out;
    }
    let mut cut = String::new();
    let mut used = 0;
    for token in text.split_whitespace() {
        let words = token_words(token);
        if used + words <= budget {
            if !cut.is_empty() {
                cut.push(' ');
            }
            cut.push_str(token);
            used += words;
            continue;
        }
        // Part of a run of unspaced script, two characters a word.
        let room = (budget - used) * 2;
        if room > 0 && token.chars().any(is_unspaced) {
            let mut seen = 0;
            if !cut.is_empty() {
                cut.push(' ');
            }
            cut.extend(token.chars().take_while(|c| {
                seen += usize::from(is_unspaced(*c));
                seen <= room
            }));
        }
        break;
    }
    while cut.ends_with([',', ';', ':', '-', '\u{2013}', '\u{2014}']) {
        cut.pop();
    }
    format!("{cut}\u{2026}")
}

/// Plain text on one line: whitespace folded, anything tag-like removed, and stray angle
/// brackets replaced so a summary can be dropped into HTML or XML without surprises.
fn clean(s: &str) -> String {
    clean_cow(s).into_owned()
}

/// [`clean`], borrowing `s` when it needs no change.
fn clean_cow(s: &str) -> Cow<'_, str> {
    if is_clean(s) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(folded(s))
    }
}

/// [`clean`] the long way.
fn folded(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == '<' && looks_like_tag(&chars[i..]) {
            // A tag, if it closes soon; otherwise a literal '<'.
            if let Some(close) = chars[i..chars.len().min(i + 200)]
                .iter()
                .position(|n| *n == '>')
            {
                i += close + 1;
                space = true;
                continue;
            }
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if c.is_control() {
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(match c {
            '<' => '\u{2039}',
            '>' => '\u{203a}',
            c => c,
        });
    }
    out
}

/// Whether [`clean`] would leave `s` as it is: no angle bracket, no control character,
/// white space only as single spaces between words. Most lines of sanitized HTML are.
fn is_clean(s: &str) -> bool {
    let mut after_space = true; // no leading space either
    for c in s.chars() {
        if c == ' ' {
            if after_space {
                return false;
            }
            after_space = true;
            continue;
        }
        if c == '<' || c == '>' || c.is_whitespace() || c.is_control() {
            return false;
        }
        after_space = false;
    }
    !after_space || s.is_empty()
}

/// Whether the text after a '<' opens an HTML tag or comment ("<b>", "</p>", "<!--"),
/// rather than prose or code ("Option<T>", "Vec<String>", "a < b").
fn looks_like_tag(after: &[char]) -> bool {
    const ELEMENTS: &[&str] = &[
        "a",
        "abbr",
        "article",
        "aside",
        "audio",
        "b",
        "blockquote",
        "br",
        "caption",
        "center",
        "cite",
        "code",
        "dd",
        "del",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "font",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "i",
        "iframe",
        "img",
        "ins",
        "li",
        "mark",
        "nav",
        "ol",
        "p",
        "picture",
        "pre",
        "q",
        "s",
        "script",
        "section",
        "small",
        "source",
        "span",
        "strong",
        "style",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "time",
        "tr",
        "u",
        "ul",
        "video",
        "wbr",
    ];
    match after.first() {
        Some('!') => true,
        Some('/') => looks_like_tag(&after[1..]),
        _ => {
            let name: String = after
                .iter()
                .take(11)
                .take_while(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            let ends = after
                .get(name.len())
                .is_some_and(|c| c.is_whitespace() || matches!(c, '>' | '/'));
            ends && ELEMENTS.contains(&name.as_str())
        }
    }
}

/// Words after which a period never ends a sentence (titles, "e.g.", initials aside).
const NEVER_FINAL: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "cf", "e.g", "i.e", "fig",
    "figs", "no", "nos", "vol", "p", "pp", "ch", "sec", "approx", "ca", "gen", "col", "lt", "sgt",
    "capt", "rev", "hon", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec", "ed", "eds", "est", "dept",
];

/// The longest entry of [`NEVER_FINAL`] and [`MAYBE_FINAL`], in chars.
const ABBREVIATION_MAX_CHARS: usize = 6;

/// Abbreviations that may also end a sentence; they do when a typical sentence opener
/// follows.
const MAYBE_FINAL: &[&str] = &[
    "etc", "u.s", "u.k", "e.u", "a.m", "p.m", "inc", "ltd", "co", "corp", "jr", "al",
];

const OPENERS: &[&str] = &[
    "the", "a", "an", "it", "its", "this", "that", "these", "those", "there", "they", "we", "i",
    "he", "she", "you", "but", "and", "so", "then", "in", "on", "at", "if", "when", "while",
    "after", "before", "our", "my", "his", "her", "their", "what", "how", "why", "one", "some",
    "most", "many", "all", "each", "every", "no", "yes", "still", "also", "however",
];

/// Splits one block of text into sentences. Survives abbreviations (Dr., e.g., U.S.,
/// a.m.), initials, decimals (3.14), ellipses followed by lower case, and closing quotes.
pub fn split_sentences(block: &str) -> Vec<&str> {
    // Byte offsets throughout: sentences are sliced from the block, not rebuilt.
    let first = |at: usize| block[at..].chars().next();
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(found) = block[i..].find(is_terminal) {
        let at = i + found;
        let c = first(at).unwrap_or('.');
        // The run of terminal punctuation and closing quotes/brackets, ending with `last`.
        let mut end = at + c.len_utf8();
        let mut last = c;
        while let Some(n) = first(end).filter(|n| is_terminal(*n)) {
            end += n.len_utf8();
            last = n;
        }
        while let Some(n) = first(end).filter(|n| {
            matches!(
                n,
                '"' | '\'' | '\u{201d}' | '\u{2019}' | ')' | ']' | '\u{300d}'
            )
        }) {
            end += n.len_utf8();
            last = n;
        }
        // A boundary needs white space (or the end) after it, except after the full-width
        // marks of scripts written without spaces.
        let wide = matches!(last, '\u{3002}' | '\u{ff01}' | '\u{ff1f}' | '\u{300d}');
        if first(end).is_some_and(|n| !n.is_whitespace()) && !wide {
            i = end;
            continue;
        }
        // The next word.
        let after = block[end..].trim_start();
        let next_word = &after[..after.find(char::is_whitespace).unwrap_or(after.len())];
        let next_starts_lower = next_word
            .chars()
            .find(|c| c.is_alphanumeric())
            .is_some_and(|c| c.is_lowercase());
        let mut boundary = !next_starts_lower || next_word.is_empty();
        if boundary && c == '.' && end == at + 1 && !next_word.is_empty() {
            // The word before the period.
            let word_start = block[start..at]
                .char_indices()
                .rev()
                .find(|(_, b)| b.is_whitespace() || matches!(b, '(' | '"' | '\u{201c}'))
                .map_or(start, |(j, b)| start + j + b.len_utf8());
            let before = &block[word_start..at];
            let mut chars = before.chars();
            let initial = chars.next().is_some_and(char::is_uppercase) && chars.next().is_none();
            // Every listed abbreviation is short: longer words need no lower-cased copy.
            let word: String = if before.len() <= 4 * ABBREVIATION_MAX_CHARS
                && before.chars().count() <= ABBREVIATION_MAX_CHARS
            {
                before.chars().flat_map(char::to_lowercase).collect()
            } else {
                String::new()
            };
            if initial || NEVER_FINAL.contains(&word.as_str()) {
                boundary = false;
            } else if MAYBE_FINAL.contains(&word.as_str()) {
                let next_lower: String = next_word
                    .chars()
                    .skip_while(|c| !c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect();
                let next_lower = next_lower.trim_end_matches(|c: char| !c.is_alphanumeric());
                boundary = OPENERS.contains(&next_lower);
            }
        }
        if boundary {
            let sentence = block[start..end].trim();
            if !sentence.is_empty() {
                sentences.push(sentence);
            }
            start = end;
        }
        i = end;
    }
    let rest = block[start..].trim();
    if !rest.is_empty() {
        sentences.push(rest);
    }
    sentences
}

/// Punctuation that may end a sentence.
fn is_terminal(c: char) -> bool {
    matches!(
        c,
        '.' | '!' | '?' | '\u{2026}' | '\u{3002}' | '\u{ff01}' | '\u{ff1f}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> Analyzer {
        Analyzer::new("english")
    }

    #[test]
    fn a_post_in_japanese_gets_a_summary_within_the_budget() {
        let paragraph = "\u{4eca}\u{65e5}\u{306f}\u{5929}\u{6c17}\u{304c}\u{826f}\u{304b}\u{3063}\u{305f}\u{306e}\u{3067}\u{3001}\u{516c}\u{5712}\u{3067}\u{30d1}\u{30f3}\u{3092}\u{713c}\u{304d}\u{307e}\u{3057}\u{305f}\u{3002}\u{751f}\u{5730}\u{306f}\u{4e00}\u{6669}\u{5bdd}\u{304b}\u{305b}\u{307e}\u{3057}\u{305f}\u{3002}";
        let text: Vec<String> = (0..20).map(|_| paragraph.to_owned()).collect();
        let text = text.join("\n");
        assert_eq!(split_sentences(paragraph).len(), 2);
        for budget in [5, 20, 60] {
            let s = summarize(&analyzer(), "\u{30d1}\u{30f3}", &text, None, budget);
            assert!(word_count(&s.text) <= budget, "{budget}: {}", s.text);
            assert!(
                s.text.chars().count() < text.chars().count() / 4,
                "{}",
                s.text
            );
            assert!(ends_sentence(&s.text), "{}", s.text);
        }
    }

    #[test]
    fn keeps_code_that_looks_a_little_like_tags() {
        assert_eq!(
            clean("Use Option<T> or Vec<String> here, since 3 < 4."),
            "Use Option\u{2039}T\u{203a} or Vec\u{2039}String\u{203a} here, since 3 \u{2039} 4."
        );
        assert_eq!(
            clean("A <b>bold</b> move. <!-- x -->Next."),
            "A bold move. Next."
        );
    }

    #[test]
    fn splits_plain_sentences() {
        assert_eq!(
            split_sentences("One two. Three four! Five six? Seven"),
            vec!["One two.", "Three four!", "Five six?", "Seven"]
        );
    }

    #[test]
    fn does_not_split_after_titles_and_latin_abbreviations() {
        assert_eq!(
            split_sentences("Dr. Smith met Prof. Jones. They talked, e.g. about soil, i.e. dirt."),
            vec![
                "Dr. Smith met Prof. Jones.",
                "They talked, e.g. about soil, i.e. dirt."
            ]
        );
    }

    #[test]
    fn handles_u_s_and_a_m() {
        assert_eq!(
            split_sentences(
                "She moved to the U.S. in May. The U.S. Army was there. We left at 9 a.m. The bus was late."
            ),
            vec![
                "She moved to the U.S. in May.",
                "The U.S. Army was there.",
                "We left at 9 a.m.",
                "The bus was late."
            ]
        );
    }

    #[test]
    fn keeps_decimals_and_initials_together() {
        assert_eq!(
            split_sentences("Pi is 3.14 roughly. J. R. R. Tolkien wrote it. Version 2.0 shipped."),
            vec![
                "Pi is 3.14 roughly.",
                "J. R. R. Tolkien wrote it.",
                "Version 2.0 shipped."
            ]
        );
    }

    #[test]
    fn handles_ellipses() {
        assert_eq!(
            split_sentences("Wait... and then it rose. Then... Nothing."),
            vec!["Wait... and then it rose.", "Then...", "Nothing."]
        );
        assert_eq!(
            split_sentences("It rose\u{2026} Then it fell."),
            vec!["It rose\u{2026}", "Then it fell."]
        );
    }

    #[test]
    fn keeps_closing_quotes_with_their_sentence() {
        assert_eq!(
            split_sentences("He said \"Stop.\" Then he left. 'Why?' she asked."),
            vec!["He said \"Stop.\"", "Then he left.", "'Why?' she asked."]
        );
        assert_eq!(
            split_sentences("\u{201c}Done.\u{201d} Next one."),
            vec!["\u{201c}Done.\u{201d}", "Next one."]
        );
    }

    fn text_sentences(text: &str) -> Vec<String> {
        text_blocks(text)
            .iter()
            .flat_map(|b| split_sentences(b))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn list_items_on_their_own_lines_stay_apart() {
        let text = "Three things:\nFlour and water\nSalt\nTime. Lots of it.";
        assert_eq!(
            text_sentences(text),
            vec![
                "Three things:",
                "Flour and water",
                "Salt",
                "Time.",
                "Lots of it."
            ]
        );
    }

    #[test]
    fn hard_wrapped_lines_are_read_as_one_paragraph() {
        let text = "We spent the weekend on the coast and the tides were\nhigher than the charts said. The harbour master\nshrugged.\nShopping list\nflour\nsalt";
        assert_eq!(
            text_sentences(text),
            vec![
                "We spent the weekend on the coast and the tides were higher than the charts said.",
                "The harbour master shrugged.",
                "Shopping list",
                "flour",
                "salt"
            ]
        );
    }

    #[test]
    fn rejects_wordpress_footer_boilerplate() {
        let content = "A home server holds photos. A backup you never restored is a hope.";
        assert_eq!(
            usable_feed_summary(
                "The post Backing up appeared first on Field Notes.",
                content
            ),
            None
        );
        let s = summarize(
            &analyzer(),
            "Backups",
            content,
            Some("The post Backing up appeared first on Field Notes."),
            60,
        );
        assert_eq!(s.source, SummarySource::Whole);
    }

    #[test]
    fn rejects_read_more_and_bracket_ellipsis_excerpts() {
        let content = "Whole wheat flour drinks water. Most dense loaves are under-hydrated, so raise the water. Then wait.";
        for cut in [
            "Whole wheat flour drinks water. Most dense loaves are [\u{2026}]",
            "Whole wheat flour drinks water. Most dense loaves are [...]",
            "Whole wheat flour drinks water. Most dense loaves are\u{2026}",
            "Whole wheat flour drinks water. Most dense loaves are Read more",
            "Whole wheat flour drinks water. Most dense loaves are Continue reading \u{2192}",
            "Whole wheat flour drinks water. Most dense loaves are",
            // Cut inside a word.
            "Whole wheat flour drinks water. Most dense loaves are under-hyd",
        ] {
            assert_eq!(usable_feed_summary(cut, content), None, "{cut}");
        }
    }

    #[test]
    fn keeps_a_real_feed_summary_without_its_read_more_link() {
        let content = "Whole wheat flour drinks water. Most dense loaves are under-hydrated.";
        assert_eq!(
            usable_feed_summary(
                "Why whole wheat loaves turn dense, and how more water fixes it. Read more",
                content
            )
            .as_deref(),
            Some("Why whole wheat loaves turn dense, and how more water fixes it.")
        );
        assert_eq!(
            usable_feed_summary(
                "Why whole wheat loaves turn dense. Continue reading \u{2192}",
                content
            )
            .as_deref(),
            Some("Why whole wheat loaves turn dense.")
        );
    }

    #[test]
    fn short_posts_are_their_own_summary() {
        let s = summarize(
            &analyzer(),
            "Note",
            "Heading\nA short post. Just two sentences.",
            None,
            60,
        );
        assert_eq!(
            s,
            PostSummary {
                text: "A short post. Just two sentences.".into(),
                source: SummarySource::Whole
            }
        );
    }

    #[test]
    fn extracts_central_sentences_in_order_within_budget() {
        let text = "Sourdough needs a healthy starter and patient fermentation. \
                    My neighbour's cat sat on the fence all morning watching birds. \
                    A starter fed with flour and water ferments the dough slowly. \
                    Fermentation of sourdough develops flavour in the dough and the crust. \
                    The weather was grey and the bus was late again.";
        let s = summarize(&analyzer(), "Sourdough fermentation", text, None, 30);
        assert_eq!(s.source, SummarySource::Extract);
        assert!(s.text.split_whitespace().count() <= 30, "{}", s.text);
        assert!(
            s.text.starts_with("Sourdough needs a healthy starter"),
            "{}",
            s.text
        );
        assert!(
            !s.text.contains("cat") && !s.text.contains("bus"),
            "{}",
            s.text
        );
    }

    #[test]
    fn cuts_a_single_long_sentence_at_a_word_boundary() {
        let long = (0..100)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ")
            + ".";
        let s = summarize(&analyzer(), "Long", &long, None, 20);
        assert_eq!(s.text.split_whitespace().count(), 20);
        assert!(s.text.ends_with('\u{2026}'));
        assert!(s.text.starts_with("word0 word1"));
    }

    #[test]
    fn strips_tags_and_angle_brackets() {
        let s = summarize(
            &analyzer(),
            "T",
            "x",
            Some("A <b>bold</b> claim that a < b holds. Quite true."),
            60,
        );
        assert_eq!(s.text, "A bold claim that a \u{2039} b holds. Quite true.");
    }

    /// A small deterministic generator for property checks.
    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn any_input_gives_a_summary_within_budget_without_tags_ending_properly() {
        let pieces = [
            "Dr.",
            "U.S.",
            "e.g.",
            "3.14",
            "...",
            "\u{2026}",
            "\"",
            "'",
            "<b>",
            "</p>",
            "<",
            ">",
            "&",
            "Hello",
            "world",
            "the",
            "Sourdough",
            "bread",
            ".",
            "!",
            "?",
            "\n",
            "\n",
            "-",
            "a.m.",
            "(",
            ")",
            "word",
            "another",
            "café",
            "\u{201c}",
            "\u{201d}",
            "\t",
            "\u{a0}",
            "\u{7}",
            "  ",
        ];
        let analyzer = analyzer();
        let mut seed = 7;
        for case in 0..2_000 {
            let len = (lcg(&mut seed) % 400) as usize;
            let mut text = String::new();
            for _ in 0..len {
                text.push_str(pieces[(lcg(&mut seed) % pieces.len() as u64) as usize]);
                if !lcg(&mut seed).is_multiple_of(3) {
                    text.push(' ');
                }
            }
            let budget = 10 + (lcg(&mut seed) % 80) as usize;
            let feed = if case % 4 == 0 {
                Some(text.as_str())
            } else {
                None
            };
            for line in text.lines() {
                // The quick path of `clean` agrees with the long one.
                if is_clean(line) {
                    assert_eq!(folded(line), line, "case {case}");
                }
                assert_eq!(clean(line), folded(line), "case {case}");
            }
            let s = summarize(&analyzer, "Title here", &text, feed, budget);
            let words = s.text.split_whitespace().count();
            assert!(
                words <= budget,
                "case {case}: {words} > {budget}: {:?}",
                s.text
            );
            assert!(
                !s.text.contains('<') && !s.text.contains('>'),
                "case {case}: {:?}",
                s.text
            );
            assert!(!s.text.contains('\n'), "case {case}: {:?}", s.text);
            assert!(
                s.text.is_empty() || ends_sentence(&s.text),
                "case {case}: {:?}",
                s.text
            );
        }
    }
}
