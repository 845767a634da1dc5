//! Text analysis shared by summaries and related posts: split into words (Unicode word
//! boundaries), lower-case, drop stop words, numbers and one-letter words, stem.
//!
//! English has a built-in stop list; for the other stemmer languages, words too common to
//! tell posts apart are dropped by document frequency in [`super::related`] instead.

use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

/// Title and tag words count this many times a body word.
pub const TITLE_WEIGHT: u32 = 3;
pub const TAG_WEIGHT: u32 = 3;
/// Body words beyond this are not indexed (long posts say what they are about early).
const MAX_BODY_WORDS: usize = 3_000;

// Stems already computed on this thread, per language: stemming is most of the cost of
// analysis and every text repeats its words.
thread_local! {
    static STEMS: std::cell::RefCell<Vec<HashMap<String, String>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Entries a thread's stem cache may hold before it starts over.
const STEM_CACHE_LIMIT: usize = 200_000;

/// Tokenizer and stemmer for one language.
pub struct Analyzer {
    stemmer: Stemmer,
    english: bool,
    /// Index of this language's stem cache.
    language: usize,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("english", &self.english)
            .finish()
    }
}

impl Analyzer {
    /// `language` is a name from [`crate::config::STEMMER_LANGUAGES`]; anything else
    /// falls back to English.
    pub fn new(language: &str) -> Self {
        let algorithm = match language {
            "arabic" => Algorithm::Arabic,
            "danish" => Algorithm::Danish,
            "dutch" => Algorithm::Dutch,
            "finnish" => Algorithm::Finnish,
            "french" => Algorithm::French,
            "german" => Algorithm::German,
            "greek" => Algorithm::Greek,
            "hungarian" => Algorithm::Hungarian,
            "italian" => Algorithm::Italian,
            "norwegian" => Algorithm::Norwegian,
            "portuguese" => Algorithm::Portuguese,
            "romanian" => Algorithm::Romanian,
            "russian" => Algorithm::Russian,
            "spanish" => Algorithm::Spanish,
            "swedish" => Algorithm::Swedish,
            "tamil" => Algorithm::Tamil,
            "turkish" => Algorithm::Turkish,
            _ => Algorithm::English,
        };
        // English, the fallback, is entry 3 of the table.
        let index = crate::config::STEMMER_LANGUAGES
            .iter()
            .position(|(name, _)| *name == language)
            .unwrap_or(3);
        Self {
            stemmer: Stemmer::create(algorithm),
            english: algorithm == Algorithm::English,
            language: index,
        }
    }

    /// Calls `f` with the stem of every indexable word of `text`, in order.
    pub fn for_each_term(&self, text: &str, mut f: impl FnMut(&str)) {
        let mut lower = String::new();
        for word in text.unicode_words() {
            if word.chars().count() < 2 || word.chars().all(|c| c.is_numeric()) {
                continue;
            }
            lower.clear();
            lower.extend(word.chars().flat_map(char::to_lowercase));
            // "don't" → "dont": apostrophes carry no meaning for matching.
            lower.retain(|c| c != '\'' && c != '\u{2019}');
            if self.english && is_english_stop_word(&lower) {
                continue;
            }
            STEMS.with(|stems| {
                let mut stems = stems.borrow_mut();
                if stems.len() <= self.language {
                    stems.resize_with(self.language + 1, HashMap::new);
                }
                let cache = &mut stems[self.language];
                if let Some(stem) = cache.get(lower.as_str()) {
                    f(stem);
                    return;
                }
                if cache.len() >= STEM_CACHE_LIMIT {
                    cache.clear();
                }
                let stem = self.stemmer.stem(&lower).into_owned();
                f(&stem);
                cache.insert(lower.clone(), stem);
            });
        }
    }

    /// The stems of `text`.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_term(text, |t| out.push(t.to_owned()));
        out
    }

    /// Weighted term counts of a post: title and tag words count more than body words.
    pub fn post_terms(&self, title: &str, tags: &[String], body: &str) -> Vec<(String, u32)> {
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut add = |t: &str, w: u32| match counts.get_mut(t) {
            Some(c) => *c += w,
            None => {
                counts.insert(t.to_owned(), w);
            }
        };
        self.for_each_term(title, |t| add(t, TITLE_WEIGHT));
        for tag in tags {
            self.for_each_term(tag, |t| add(t, TAG_WEIGHT));
        }
        let mut words = 0;
        self.for_each_term(body, |t| {
            if words < MAX_BODY_WORDS {
                add(t, 1);
                words += 1;
            }
        });
        let mut out: Vec<(String, u32)> = counts.into_iter().collect();
        out.sort_unstable();
        out
    }
}

/// English stop words, sorted for binary search.
const ENGLISH_STOP_WORDS: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "against",
    "ago",
    "all",
    "almost",
    "also",
    "although",
    "always",
    "am",
    "among",
    "an",
    "and",
    "another",
    "any",
    "anyone",
    "anything",
    "are",
    "around",
    "as",
    "at",
    "away",
    "back",
    "be",
    "became",
    "because",
    "become",
    "been",
    "before",
    "being",
    "below",
    "best",
    "better",
    "between",
    "both",
    "but",
    "by",
    "came",
    "can",
    "cannot",
    "cant",
    "come",
    "could",
    "did",
    "didnt",
    "do",
    "does",
    "doesnt",
    "doing",
    "done",
    "dont",
    "down",
    "during",
    "each",
    "either",
    "else",
    "enough",
    "even",
    "ever",
    "every",
    "few",
    "first",
    "for",
    "from",
    "further",
    "get",
    "gets",
    "give",
    "go",
    "goes",
    "going",
    "good",
    "got",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "id",
    "if",
    "ill",
    "im",
    "in",
    "instead",
    "into",
    "is",
    "isnt",
    "it",
    "its",
    "itself",
    "ive",
    "just",
    "keep",
    "know",
    "last",
    "least",
    "less",
    "let",
    "like",
    "little",
    "long",
    "made",
    "make",
    "makes",
    "many",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "need",
    "needs",
    "never",
    "new",
    "next",
    "no",
    "nor",
    "not",
    "nothing",
    "now",
    "of",
    "off",
    "often",
    "old",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "others",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "put",
    "quite",
    "rather",
    "really",
    "said",
    "same",
    "say",
    "says",
    "see",
    "seem",
    "seems",
    "several",
    "shall",
    "she",
    "should",
    "since",
    "so",
    "some",
    "something",
    "still",
    "such",
    "take",
    "than",
    "that",
    "thats",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "theyre",
    "thing",
    "things",
    "this",
    "those",
    "though",
    "three",
    "through",
    "thus",
    "to",
    "too",
    "took",
    "two",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "use",
    "used",
    "using",
    "very",
    "via",
    "want",
    "was",
    "way",
    "we",
    "well",
    "went",
    "were",
    "weve",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "wont",
    "would",
    "yet",
    "you",
    "your",
    "youre",
    "yours",
    "yourself",
    "yourselves",
];

fn is_english_stop_word(w: &str) -> bool {
    ENGLISH_STOP_WORDS.binary_search(&w).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{decode_terms, encode_terms};

    #[test]
    fn stems_and_drops_stop_words_and_numbers() {
        let a = Analyzer::new("english");
        assert_eq!(
            a.terms("The starters were fermenting in 2026, and I'm baking!"),
            vec!["starter", "ferment", "bake"]
        );
    }

    #[test]
    fn weights_title_and_tags_above_body() {
        let a = Analyzer::new("english");
        let terms = a.post_terms("Sourdough", &["Baking".into()], "sourdough bread");
        assert_eq!(
            terms,
            vec![
                ("bake".into(), 3),
                ("bread".into(), 1),
                ("sourdough".into(), 4)
            ]
        );
    }

    #[test]
    fn terms_round_trip_through_the_store_encoding() {
        let terms = vec![("bake".to_string(), 3), ("bread".to_string(), 1)];
        assert_eq!(decode_terms(&encode_terms(&terms)), terms);
        assert_eq!(decode_terms(""), Vec::new());
    }

    #[test]
    fn the_stop_list_is_sorted() {
        assert!(ENGLISH_STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        let a = Analyzer::new("english");
        for w in ["the", "about", "yourselves", "whether", "because"] {
            assert!(a.terms(w).is_empty(), "{w} should be a stop word");
        }
    }
}
