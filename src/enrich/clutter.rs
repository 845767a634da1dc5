//! Publisher clutter, removed before a post is summarized or indexed.
//!
//! In: a post's sanitized HTML (or a feed's one-line summary). Out: its prose as plain
//! text, one block per line, without what publishers wrap around it: figure captions,
//! navigation, asides and footers; link-only rows ("Related: …", share buttons, tag
//! lists); share and "related" sections with the short rows under them; whole-paragraph
//! footers (WordPress "The post X appeared first on Y.", Medium's "…was originally
//! published in…", Substack's "Thanks for reading…", Blogger's "Posted by … at …",
//! copyright lines, photo credits, members-only notices); and trailers anchored to the
//! end of a paragraph ("[…]", "Continue reading →", "Read more", "(more…)"), with the
//! unfinished sentence an excerpt's cut leaves before them.
//!
//! Structure decides first (ammonia keeps `figcaption`, `nav`, `aside`, `footer` and
//! links; it drops `script` and `style` with their text). Text patterns are English and
//! deliberately narrow: each one must match a whole short paragraph, or the very end of
//! one, so prose that merely uses the words ("You can read more about tides in my
//! earlier post.") stays. Nothing here changes what is stored or published as content:
//! the cleaned text feeds the summary and the related index only.

use crate::markup::{Block, html_blocks};

/// A paragraph at most this long may be a whole-paragraph footer, label or caption.
const SHORT_WORDS: usize = 40;
/// Under a share or "related" heading, rows this short (or mostly links) belong to it.
const SECTION_ROW_WORDS: usize = 12;

/// The prose of a post's sanitized HTML, one block per line, clutter removed. Empty when
/// the whole post is clutter (a protected-post notice, a bare link list).
pub fn clean_html(html: &str) -> String {
    clean_blocks(html_blocks(html))
}

/// [`clean_html`] for plain text (one block per line), where no link or heading is known.
pub fn clean_text(text: &str) -> String {
    clean_blocks(text.lines().map(|line| Block {
        text: line.to_owned(),
        words: line.split_whitespace().count(),
        link_words: 0,
        heading: false,
        item: false,
    }))
}

fn clean_blocks(blocks: impl IntoIterator<Item = Block>) -> String {
    let mut prose: Vec<String> = Vec::new();
    let mut in_section = false;
    for block in blocks {
        let text = block.text.trim();
        if text.is_empty() {
            continue;
        }
        // Headings, notices and footers are short: a long paragraph is prose or a link
        // row, and is not lower-cased to find out.
        let lower = if block.words > SHORT_WORDS {
            String::new()
        } else {
            text.to_ascii_lowercase()
        };
        if is_section_heading(&lower) || is_locked_notice(&lower) {
            in_section = true;
            continue;
        }
        if in_section {
            if !block.heading && belongs_to_section(&block) {
                continue;
            }
            in_section = false;
        }
        if is_link_row(&block) || is_clutter_paragraph(text, &lower, block.words) {
            continue;
        }
        // The block's own string, trimmed in place rather than copied.
        let start = block.text.len() - block.text.trim_start().len();
        let end = start + text.len();
        let mut kept = block.text;
        kept.truncate(end);
        kept.drain(..start);
        prose.push(kept);
    }
    // A bare "…" is a cut only at the end of the text (an excerpt): within it, a
    // paragraph that trails off ("And waited...") is the writer's own.
    let last = prose.len().saturating_sub(1);
    let mut out = String::with_capacity(prose.iter().map(|p| p.len() + 1).sum());
    for (i, text) in prose.into_iter().enumerate() {
        let (kept, _) = strip_trailers_within(text, i == last);
        if !kept.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&kept);
        }
    }
    out
}

/// A feed's own summary (one line of plain text) without footers and trailers. The
/// flag says whether a cut marker ("[…]", "Read more") ended it.
pub fn clean_summary(summary: &str) -> (String, bool) {
    let text = summary.trim();
    let lower = text.to_ascii_lowercase();
    if is_clutter_paragraph(text, &lower, text.split_whitespace().count())
        || is_locked_notice(&lower)
    {
        return (String::new(), false);
    }
    strip_trailers(text)
}

/// Mostly link text: share buttons, "Related: <a>…</a>" rows, tag and category lists.
fn is_link_row(block: &Block) -> bool {
    block.words > 0 && block.link_words * 10 >= block.words * 9
}

/// A heading (or a label on its own line) that opens a share, "related" or comments
/// section: what follows it, while short, is part of it.
fn is_section_heading(lower: &str) -> bool {
    let label = lower
        .trim_end_matches([':', '.', '!', '\u{2026}', ' '])
        .trim();
    const HEADINGS: &[&str] = &[
        "share this",
        "share this post",
        "share this article",
        "share this story",
        "share",
        "share on",
        "like this",
        "related",
        "related posts",
        "related articles",
        "related stories",
        "related reading",
        "more stories",
        "more from the blog",
        "you may also like",
        "you might also like",
        "recommended",
        "recommended for you",
        "read next",
        "keep reading",
        "trending",
        "popular posts",
        "leave a comment",
        "leave a reply",
        "comments",
        "follow us",
        "subscribe",
    ];
    HEADINGS.contains(&label)
        || label.starts_with("more from ") && label.split_whitespace().count() <= 5
        || label.starts_with("like this:") && label.len() < 60
}

/// A row under a share or related heading: short, or mostly links.
fn belongs_to_section(block: &Block) -> bool {
    block.words <= SECTION_ROW_WORDS || block.link_words * 2 >= block.words
}

/// Members-only, paid and password notices: the post behind them is not here.
fn is_locked_notice(lower: &str) -> bool {
    if lower.split_whitespace().nth(SHORT_WORDS).is_some() {
        return false;
    }
    const NOTICES: &[&str] = &[
        "this post is password protected",
        "this content is password protected",
        "there is no excerpt because this is a protected post",
        "this post is for paid subscribers",
        "this post is for paying subscribers",
        "this post is for subscribers",
        "this content is for members only",
        "this post is for members only",
        "this article is for members only",
        "this content is for paid members",
        "subscribe to continue reading",
        "subscribe to keep reading",
        "to view it please enter your password",
        "sign in to read the full",
        "you must be logged in to view",
        "you must be logged in to read",
        "you must be logged in to see",
        "you must be logged in to access",
        "become a member to read",
    ];
    // At the start only: "You must be logged in to the router as admin…" is prose.
    NOTICES.iter().any(|n| lower.starts_with(n))
}

/// A whole paragraph that is a publisher footer, a caption or a label, never prose.
fn is_clutter_paragraph(text: &str, lower: &str, words: usize) -> bool {
    if words > SHORT_WORDS {
        return false;
    }
    let starts = |p: &str| lower.starts_with(p);
    // WordPress's feed footer, and themes' "This entry was posted in …".
    (starts("the post ") && is_first_on_footer(lower))
        || starts("this entry was posted in ")
        || starts("this entry was posted on ")
        // Medium.
        || (lower.contains(" was originally published in ") && lower.contains("medium"))
        || starts("continue reading on medium")
        // Republished elsewhere.
        || starts("originally published at ")
        || starts("originally published on ")
        || starts("originally posted at ")
        || starts("originally posted on ")
        || starts("this article appeared first on ")
        || starts("this article was originally published ")
        || starts("this story originally appeared ")
        || starts("this post originally appeared ")
        || starts("this article originally appeared ")
        // Substack and newsletters.
        || (starts("thanks for reading ") && lower.contains("subscribe"))
        || (starts("sign up for ") && lower.contains("newsletter"))
        || starts("subscribe now")
        || starts("sign up for more like this")
        || starts("get the latest posts delivered")
        // Blogger.
        || (starts("posted by ") && words <= 12)
        || is_comment_count(lower)
        || starts("labels:")
        || starts("tags:")
        || starts("tagged:")
        || starts("tagged with:")
        || starts("filed under:")
        || starts("filed under ") && words <= 12
        || starts("categories:")
        || starts("category:")
        || starts("posted in ") && words <= 12
        || starts("share this:")
        || starts("like this:")
        // Link rows that are not links (plain-text feeds).
        || starts("related:")
        || starts("read more:")
        || starts("see also:")
        || starts("also read:")
        || starts("read also:")
        || starts("recommended:")
        || starts("more:")
        || is_caption(lower)
        || is_copyright(text, lower)
        || is_only_trailer(lower)
}

/// "… appeared first on <site>." ending the text: the site's name is short and a sentence
/// of its own does not follow ("…appeared first on the list, then vanished" is prose).
fn is_first_on_footer(lower: &str) -> bool {
    lower
        .rsplit_once(" appeared first on ")
        .is_some_and(|(_, site)| {
            // A site's name may hold a comma ("Small Kitchen, Big Pot"); a sentence
            // that goes on after "first on" is longer or asks or exclaims.
            site.split_whitespace().count() <= 8
                && site.matches(',').count() <= 1
                && !site.contains([';', '!', '?'])
        })
}

/// "3 comments:", "No comments:", "12 Comments".
fn is_comment_count(lower: &str) -> bool {
    let label = lower.trim_end_matches([':', '.']).trim();
    let Some((count, word)) = label.split_once(' ') else {
        return false;
    };
    (word == "comments" || word == "comment" || word == "responses" || word == "replies")
        && (count == "no" || count.chars().all(|c| c.is_ascii_digit()))
}

/// A photo or image credit ("Photo: Ana Ruiz/Reuters", "Image by …", "Credit: …").
fn is_caption(lower: &str) -> bool {
    const LABELS: &[&str] = &[
        "photo:",
        "photo by ",
        "photos:",
        "photograph:",
        "photograph by ",
        "image:",
        "image by ",
        "image credit:",
        "photo credit:",
        "credit:",
        "illustration:",
        "illustration by ",
        "pictured:",
        "picture:",
        "top image:",
        "header image:",
        "featured image:",
        "source:",
    ];
    LABELS.iter().any(|l| lower.starts_with(l))
}

/// "© 2025 The Gazette", "Copyright 2024 Example Media. All rights reserved." (but not
/// a sentence about copyright law).
fn is_copyright(text: &str, lower: &str) -> bool {
    if text.starts_with('\u{a9}') || lower.starts_with("(c) ") {
        return true;
    }
    // The year comes right after the word ("Copyright 2024 …", "Copyright © 2019-2025
    // …"); "Copyright law changed in 2024" is a sentence about copyright.
    lower.starts_with("copyright")
        && (lower.contains("all rights reserved")
            || lower.contains('\u{a9}')
            || lower.split_whitespace().take(3).any(|w| {
                w.split(|c: char| !c.is_ascii_digit())
                    .any(|n| n.len() == 4 && (n.starts_with("19") || n.starts_with("20")))
            }))
}

/// A paragraph that is nothing but a "read more" link text.
fn is_only_trailer(lower: &str) -> bool {
    let (rest, cut) = strip_trailers(lower);
    cut && rest.is_empty()
}

/// Phrases that end an excerpt as a link to the rest.
const CUT_PHRASES: &[&str] = &[
    "continue reading on medium",
    "continue reading",
    "keep reading",
    "read more",
    "read the full story",
    "read the full article",
    "read the full post",
    "read full article",
    "read full story",
    "read the rest",
    "read the rest of this entry",
    "view the full article",
];

/// A quoted title of at most 15 words and nothing after it but arrows and marks:
/// WordPress's `Continue reading "Title" →`. "Keep reading 'til the end." and "Continue
/// reading ‘Middlemarch’ aloud each night." are sentences.
fn quoted_title_then_marks(after: &str) -> bool {
    let after = after.trim_start();
    let Some(open) = after.chars().next() else {
        return false;
    };
    let close: &[char] = match open {
        '"' => &['"'],
        '\'' => &['\''],
        '\u{201c}' => &['\u{201d}'],
        '\u{2018}' => &['\u{2019}'],
        _ => return false,
    };
    let inner = &after[open.len_utf8()..];
    let Some(end) = inner.find(close) else {
        return false;
    };
    let title = &inner[..end];
    let rest = &inner[end + close[0].len_utf8()..];
    !title.trim().is_empty()
        && title.split_whitespace().count() <= 15
        && rest.chars().all(is_arrow_or_mark)
}

/// Characters that may follow a cut phrase ("Read more »", "Continue reading →").
fn is_arrow_or_mark(c: char) -> bool {
    matches!(
        c,
        '\u{bb}' | '\u{2192}' | '\u{203a}' | '>' | '.' | '\u{2026}' | '!' | ']' | ')' | '[' | '('
    ) || c.is_whitespace()
        || c == '-'
}

/// Removes trailers from the end of one paragraph: "[…]", "[...]", "(more…)", "Read
/// more »", "Continue reading <title> →", "Continue reading on Medium »", WordPress's
/// "The post X appeared first on Y." run into the text. After a cut marker the
/// unfinished sentence before it goes too (or gets "…" when it is all there is). Returns
/// the text and whether a cut marker was found.
pub fn strip_trailers(text: &str) -> (String, bool) {
    strip_trailers_within(text.trim().to_owned(), true)
}

/// [`strip_trailers`], where a bare closing ellipsis counts as a cut only when
/// `bare_ellipsis` (at the end of a text, not inside it). `text` comes trimmed.
fn strip_trailers_within(mut text: String, bare_ellipsis: bool) -> (String, bool) {
    let mut cut = false;
    // The WordPress footer run into the excerpt (plain-text feeds flatten it in).
    // (It is near the end: only the last bytes are searched.)
    // The tail alone is lower-cased first: the whole text only when the footer is there.
    let tail = text.floor_char_boundary(text.len().saturating_sub(FOOTER_TAIL_BYTES));
    let lower = if contains_ignoring_ascii_case(&text[tail..], " appeared first on ") {
        text.to_ascii_lowercase()
    } else {
        String::new()
    };
    if !lower.is_empty()
        && let Some(pos) = lower[tail..].rfind(" appeared first on ").map(|p| p + tail)
        && let Some(start) = lower[..pos].rfind("the post ")
        && is_first_on_footer(&lower[start..])
        && (start == 0
            || lower[..start]
                .trim_end()
                .ends_with(['.', '!', '?', '\u{2026}', ']', ')', '"', '\u{201d}']))
    {
        text.truncate(start);
    }
    // Markers can stack ("… Read more »"); a text of nothing but markers stops after a
    // few rounds, so each round's work stays bounded.
    for _ in 0..MAX_STACKED_MARKERS {
        let before = text.len();
        text.truncate(text.trim_end().len());
        if let Some(rest) = strip_cut_marker(&text, bare_ellipsis) {
            text.truncate(rest);
            cut = true;
        }
        if text.len() == before {
            break;
        }
    }
    let kept = text
        .trim_end_matches([' ', '|', '-', '\u{2013}', '\u{2014}', ':'])
        .len();
    text.truncate(kept);
    if cut {
        return (drop_unfinished(&text), true);
    }
    (text, false)
}

/// Whether `hay` holds `needle` (lower-case ASCII) in any ASCII case.
fn contains_ignoring_ascii_case(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Bytes at the end of a paragraph searched for WordPress's run-in footer: a title of
/// up to 300 characters, the site's name and the words between.
const FOOTER_TAIL_BYTES: usize = 1_200;

/// Rounds of [`strip_cut_marker`] on one paragraph.
const MAX_STACKED_MARKERS: usize = 8;

/// Bytes at the end of a paragraph searched for a cut marker: the longest phrase, a
/// quoted title of 15 words and arrows fit with room to spare.
const MARKER_TAIL_BYTES: usize = 400;

/// The length `text` keeps once a cut marker is removed from its end, if it ends with one.
/// Only the last [`MARKER_TAIL_BYTES`] are read.
fn strip_cut_marker(text: &str, bare_ellipsis: bool) -> Option<usize> {
    let from = text.floor_char_boundary(text.len().saturating_sub(MARKER_TAIL_BYTES));
    let head = &text[..from];
    let text = &text[from..];
    let lower = text.to_ascii_lowercase();
    for mark in [
        "[\u{2026}]",
        "[...]",
        "[&hellip;]",
        "[ \u{2026} ]",
        "(more\u{2026})",
        "(more...)",
        "[more]",
        "[read more]",
        "\u{2026}",
        "...",
        "&hellip;",
        "\u{bb}",
        "\u{2192}",
    ] {
        if lower.ends_with(mark) && text.is_char_boundary(text.len() - mark.len()) {
            let rest = &text[..text.len() - mark.len()];
            // A closing ellipsis is a cut only when it ends an unfinished sentence or
            // follows a cut phrase; "…and then it rained…" style prose keeps it.
            if (mark == "\u{2026}" || mark == "..." || mark == "&hellip;")
                && (!bare_ellipsis || rest.trim_end().ends_with(['.', '!', '?']))
            {
                return None;
            }
            return Some(from + rest.len());
        }
    }
    // Every phrase holds one of these: most paragraphs need no phrase search at all.
    if !lower.contains("read") && !lower.contains("view the full") {
        return None;
    }
    for phrase in CUT_PHRASES {
        let Some(at) = lower.rfind(phrase) else {
            continue;
        };
        if !text.is_char_boundary(at) || !text.is_char_boundary(at + phrase.len()) {
            continue;
        }
        let after = &text[at + phrase.len()..];
        let before = text[..at].trim_end();
        // At the window's edge, what precedes is the rest of the paragraph.
        let before_all = if before.is_empty() {
            head.trim_end()
        } else {
            before
        };
        // What follows the phrase: nothing, arrows, or the post's title in quotes
        // (WordPress's "Continue reading "Title" →"), never a sentence of its own.
        let tail_ok = after.chars().all(is_arrow_or_mark)
            || quoted_title_then_marks(after)
            || after
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("on medium");
        if !tail_ok {
            continue;
        }
        // What precedes it: the start, a sentence end, an ellipsis or a separator, or
        // a capital letter mid-sentence ("…the bridge Continue reading"), which marks
        // link text rather than prose ("I want to read more.").
        let capital = text[at..].starts_with(|c: char| c.is_uppercase());
        let head_ok = before_all.is_empty()
            || before_all.ends_with([
                '.', '!', '?', '\u{2026}', '[', '(', '|', '-', '\u{2013}', '\u{2014}', ':', '"',
                '\u{201d}',
            ])
            || capital;
        // "I will read more." is prose: a phrase that ends in a period after a lower-case
        // word is a sentence, and so is one that exclaims ("Read more!").
        if !head_ok || after.trim() == "!" || (!capital && after.trim() == ".") {
            continue;
        }
        return Some(if before.is_empty() {
            head.trim_end().len()
        } else {
            from + before.len()
        });
    }
    None
}

/// An excerpt cut mid-sentence: keep its whole sentences, or mark the fragment with "…"
/// when it is all there is.
fn drop_unfinished(text: &str) -> String {
    let text = text.trim_end();
    if text.is_empty() || ends_sentence(text) {
        return text.to_owned();
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (n, (i, c)) in chars.iter().enumerate().rev() {
        let next_is_space = chars.get(n + 1).is_none_or(|(_, c)| c.is_whitespace());
        if matches!(c, '.' | '!' | '?') && next_is_space {
            let kept = &text[..i + c.len_utf8()];
            // Only a real sentence end: not "Dr." or an initial.
            let last = kept
                .trim_end_matches(['.', '!', '?'])
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or("");
            if last.chars().count() > 2 || last.chars().any(|c| c.is_ascii_digit()) {
                return kept.to_owned();
            }
        }
    }
    let trimmed = text.trim_end_matches([',', ';', ':', ' ', '-', '\u{2013}', '\u{2014}']);
    format!("{trimmed}\u{2026}")
}

fn ends_sentence(s: &str) -> bool {
    s.trim_end_matches(['"', '\'', '\u{201d}', '\u{2019}', ')', '\u{300d}'])
        .ends_with([
            '.', '!', '?', '\u{2026}', '\u{3002}', '\u{ff01}', '\u{ff1f}',
        ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailer(s: &str) -> String {
        strip_trailers(s).0
    }

    #[test]
    fn drops_the_wordpress_footer_paragraph_and_run_in() {
        let html = "<p>We planted the garlic in October.</p>\
                    <p>The post <a href=\"https://e.org/garlic\">Planting garlic</a> appeared first on <a href=\"https://e.org\">Plot 29</a>.</p>";
        assert_eq!(clean_html(html), "We planted the garlic in October.");
        assert_eq!(
            trailer("We planted the garlic. The post Planting garlic appeared first on Plot 29."),
            "We planted the garlic."
        );
        assert_eq!(
            clean_summary(
                "The frost came early [&hellip;] The post Frost appeared first on Weather Notes."
            )
            .0,
            "The frost came early\u{2026}"
        );
        // A site name with a comma in it, after an excerpt cut mid-sentence.
        assert_eq!(
            clean_summary(
                "I make a pot most weeks. It costs very [\u{2026}] The post Roasted Cauliflower \
                 Soup appeared first on Small Kitchen, Big Pot."
            )
            .0,
            "I make a pot most weeks."
        );
    }

    #[test]
    fn drops_bracketed_ellipses_and_the_unfinished_sentence_before_them() {
        assert_eq!(
            trailer("The council voted to close the pool. Swimmers say the decision [\u{2026}]"),
            "The council voted to close the pool."
        );
        assert_eq!(
            trailer("Swimmers say the [...]"),
            "Swimmers say the\u{2026}"
        );
        assert_eq!(
            trailer("It rained all week [&hellip;]"),
            "It rained all week\u{2026}"
        );
        assert_eq!(
            trailer("Dough rose overnight. Then the oven (more\u{2026})"),
            "Dough rose overnight."
        );
        // An ellipsis that ends a finished thought is the writer's, not a cut.
        assert_eq!(
            trailer("And then it rained. Again."),
            "And then it rained. Again."
        );
    }

    #[test]
    fn drops_read_more_and_continue_reading_links() {
        assert_eq!(
            trailer("Our first loaf was flat. Read more \u{bb}"),
            "Our first loaf was flat."
        );
        assert_eq!(
            trailer("The new timetable starts Monday. Continue reading \u{2192}"),
            "The new timetable starts Monday."
        );
        assert_eq!(
            trailer(
                "Tides are odd here. Continue reading \u{201c}Tides at Brancaster\u{201d} \u{2192}"
            ),
            "Tides are odd here."
        );
        assert_eq!(
            trailer("Why I left the cloud. Continue reading on Medium \u{bb}"),
            "Why I left the cloud."
        );
        assert_eq!(
            trailer("The bridge reopened on Tuesday after the Continue reading"),
            "The bridge reopened on Tuesday after the\u{2026}"
        );
        assert_eq!(trailer("Read more"), "");
        assert_eq!(
            clean_html("<p>Good tides.</p><p><a href=\"/x\">Read more</a></p>"),
            "Good tides."
        );
    }

    #[test]
    fn keeps_prose_that_uses_the_same_words() {
        for prose in [
            "You can read more about tides in my earlier post.",
            "I always want to read more.",
            "Continue reading the label before you buy.",
            "Share this recipe with anyone who bakes.",
            "The post office on Mill Lane appeared first on the list of closures, then vanished from it in the spring.",
            "Photos of the flood are on the council's site, and they are sobering.",
            "Copyright law is changing for photographers this year.",
            "Related work in soil science suggests otherwise.",
            "Posted by the author of the original study, the correction arrived on Friday, two weeks after the paper made headlines around the world and the researchers had begun fielding calls.",
            "She paused... and then laughed.",
            "Copyright law changed in 2024 for photographers.",
            "Keep reading 'til the end.",
            "We finished chapter one. Continue reading \u{2018}Middlemarch\u{2019} aloud each night.",
            "My advice: read more!",
            "I have one rule. Read more!",
            "You must be logged in to the router as admin to change this.",
        ] {
            assert_eq!(clean_html(&format!("<p>{prose}</p>")), prose, "{prose}");
            assert_eq!(clean_summary(prose).0, prose, "{prose}");
        }
    }

    #[test]
    fn drops_captions_furniture_and_link_rows() {
        let html = "<figure><img src=\"x.jpg\"><figcaption>Flood water on Quay Street.</figcaption></figure>\
                    <p>Photo: Ana Ruiz/Coast Herald</p>\
                    <p>The river peaked at 4.2 metres on Sunday.</p>\
                    <p><strong>Related:</strong> <a href=\"/a\">Flood defences delayed again</a></p>\
                    <p>Related: Flood defences delayed again</p>\
                    <nav><a href=\"/\">Home</a> <a href=\"/news\">News</a></nav>\
                    <aside>Most read this week</aside>\
                    <p>Residents were told to move cars from the quay.</p>\
                    <footer>Coast Herald, 12 Quay Street</footer>\
                    <p>\u{a9} 2026 Coast Herald. All rights reserved.</p>";
        assert_eq!(
            clean_html(html),
            "The river peaked at 4.2 metres on Sunday.\nResidents were told to move cars from the quay."
        );
    }

    #[test]
    fn drops_share_and_related_sections_with_their_rows() {
        let html = "<p>The lane is finally resurfaced.</p>\
                    <h3>Share this:</h3><ul><li><a href=\"/t\">Twitter</a></li><li><a href=\"/f\">Facebook</a></li></ul>\
                    <p>Like this:</p><p>Like Loading...</p>\
                    <h3>Related</h3><p><a href=\"/r1\">Potholes on Mill Lane</a></p><p>In \"Roads\"</p>\
                    <h2>What happens next</h2><p>The council will inspect it in spring.</p>";
        assert_eq!(
            clean_html(html),
            "The lane is finally resurfaced.\nWhat happens next\nThe council will inspect it in spring."
        );
    }

    #[test]
    fn drops_platform_footers() {
        for footer in [
            "<p><a href=\"https://m.com/x\">Why I left the cloud</a> was originally published in <a href=\"https://m.com/p\">Ops Notes</a> on Medium, where people are continuing the conversation by highlighting and responding to this story.</p>",
            "<p>Thanks for reading Field Notes! Subscribe for free to receive new posts and support my work.</p>",
            "<p>Posted by Margaret at 9:14 AM</p>",
            "<p>3 comments:</p>",
            "<p>No comments:</p>",
            "<p>Labels: bread, rye</p>",
            "<p>This entry was posted in Garden and tagged garlic. Bookmark the permalink.</p>",
            "<p>Originally published at tidesandtimes.net on March 3, 2026.</p>",
            "<p>This article appeared first on The Valley Courier.</p>",
            "<p>Copyright 2025 Valley Courier Ltd</p>",
            "<p>Image by Tomas Berg from Pixabay</p>",
        ] {
            let html = format!("<p>The frost came early this year.</p>{footer}");
            assert_eq!(
                clean_html(&html),
                "The frost came early this year.",
                "{footer}"
            );
        }
    }

    #[test]
    fn text_whose_case_changes_its_length_is_cut_at_the_right_place() {
        // Full Unicode lower-casing makes "\u{130}" longer; matching on an ASCII-lowered
        // copy keeps every byte offset valid in the original.
        assert_eq!(
            trailer("\u{130}stanbul \u{130}\u{130} was sunny. The post Sun appeared first on Sky."),
            "\u{130}stanbul \u{130}\u{130} was sunny."
        );
        assert_eq!(
            trailer("Sunny. \u{130}\u{130}\u{130} K\u{130}L Read more \u{bb}"),
            "Sunny."
        );
    }

    #[test]
    fn a_paragraph_that_trails_off_inside_the_text_keeps_its_sentence() {
        assert_eq!(
            clean_html("<p>We waited for the ferry. And waited...</p><p>It came at noon.</p>"),
            "We waited for the ferry. And waited...\nIt came at noon."
        );
        // At the end it is an excerpt's cut, as before.
        assert_eq!(
            clean_html(
                "<p>It came at noon.</p><p>We waited for the ferry. And then the\u{2026}</p>"
            ),
            "It came at noon.\nWe waited for the ferry."
        );
    }

    #[test]
    fn a_notice_phrase_inside_prose_does_not_start_a_section() {
        let html = "<p>You must be logged in to the router as admin to change this.</p>\
                    <p>Open Advanced, then DNS.</p><p>Enter the resolver and save.</p>";
        assert_eq!(
            clean_html(html),
            "You must be logged in to the router as admin to change this.\nOpen Advanced, then DNS.\nEnter the resolver and save."
        );
        assert_eq!(
            clean_html("<p>Copyright 2024 Example Media.</p><p>Text.</p>"),
            "Text."
        );
        assert_eq!(
            trailer("We planted garlic. Continue reading \u{201c}Planting garlic\u{201d} \u{2192}"),
            "We planted garlic."
        );
    }

    #[test]
    fn a_protected_post_is_all_clutter() {
        assert_eq!(
            clean_html(
                "<p>This post is password protected. To view it please enter your password below:</p><p>Password:</p>"
            ),
            ""
        );
        assert_eq!(
            clean_html(
                "<p>This post is for paid subscribers</p><p><a href=\"/s\">Subscribe</a></p><p>Already a paid subscriber? Sign in</p>"
            ),
            ""
        );
        assert_eq!(
            clean_summary("There is no excerpt because this is a protected post.").0,
            ""
        );
    }
}
