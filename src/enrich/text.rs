//! Text analysis shared by summaries and related posts: split into words (Unicode word
//! boundaries), lower-case, drop stop words, numbers and one-letter words, stem.
//!
//! English has a built-in stop list; for the other stemmer languages, words too common to
//! tell posts apart are dropped by document frequency in [`super::related`] instead.

use rust_stemmers::{Algorithm, Stemmer};

use crate::domain::Terms;

use super::intern::Interner;
use unicode_segmentation::UnicodeSegmentation;

/// Title and tag words count this many times a body word.
pub const TITLE_WEIGHT: u32 = 3;
pub const TAG_WEIGHT: u32 = 3;
/// Body words beyond this are not indexed (long posts say what they are about early).
const MAX_BODY_WORDS: usize = 3_000;

// Words already analysed on this thread, per language: stemming and the stop list are
// most of the cost of analysis and every text repeats its words.
thread_local! {
    static CACHES: std::cell::RefCell<Vec<StemCache>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Words a thread's cache may hold before it starts over (checked when a call begins, so
/// ids stay valid for the whole of one call).
const STEM_CACHE_LIMIT: usize = 200_000;

/// Bytes of words a thread's cache may hold (a text of very long "words" would
/// otherwise keep them all).
const STEM_CACHE_BYTES: usize = 64 << 20;

/// A word that yields no term: a stop word, a number, a single letter.
const SKIP: u32 = u32::MAX;

/// Word (as written) → stem id, and the stems by id.
#[derive(Default)]
struct StemCache {
    /// Words as written, and the stem id of each (`SKIP` for none), by word id.
    words: Interner,
    word_stems: Vec<u32>,
    stems: Interner,
    /// Zero by stem id between calls: counting space for [`TermIds::post_terms`].
    counts: Vec<u32>,
}

impl StemCache {
    fn clear(&mut self) {
        self.words.clear();
        self.word_stems.clear();
        self.stems.clear();
        self.counts.clear();
    }

    /// The stem id of `word` as written (`SKIP` when it yields no term).
    fn id(&mut self, analyzer: &Analyzer, word: &str, lower: &mut String) -> u32 {
        let (word_id, new) = self.words.intern(word);
        if !new {
            return self.word_stems[word_id as usize];
        }
        let id = if !lowered(word, lower) || analyzer.english && is_english_stop_word(lower) {
            SKIP
        } else {
            self.stems.intern(&analyzer.stemmer.stem(lower)).0
        };
        self.word_stems.push(id);
        id
    }

    /// Calls `f` with the stem id of every indexable word of `text`, in order.
    fn scan(&mut self, analyzer: &Analyzer, text: &str, f: impl FnMut(u32)) {
        self.scan_until(analyzer, text, usize::MAX, f);
    }

    /// [`Self::scan`] for the first `limit` terms only.
    fn scan_until(
        &mut self,
        analyzer: &Analyzer,
        text: &str,
        limit: usize,
        mut f: impl FnMut(u32),
    ) {
        let mut lower = String::new();
        let mut found = 0;
        for word in text.unicode_words() {
            if found == limit {
                return;
            }
            // Numbers and single letters never reach the cache (there are too many).
            if word.len() < 2 || word.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let id = self.id(analyzer, word, &mut lower);
            if id != SKIP {
                found += 1;
                f(id);
            }
        }
    }
}

/// `word` lower-cased into `out`, without apostrophes ("don't" → "dont": they carry no
/// meaning for matching); false for a word that is no term (one letter, a number).
fn lowered(word: &str, out: &mut String) -> bool {
    if word.chars().count() < 2 || word.chars().all(|c| c.is_numeric()) {
        return false;
    }
    out.clear();
    if word.is_ascii() {
        out.extend(
            word.bytes()
                .filter(|b| *b != b'\'')
                .map(|b| char::from(b.to_ascii_lowercase())),
        );
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
        out.retain(|c| c != '\'' && c != '\u{2019}');
    }
    true
}

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

    /// Runs `f` with this thread's cache for the language (a fresh one when the thread's
    /// is in use further up the stack). Ids are valid until `f` returns.
    fn with_cache<R>(&self, f: impl FnOnce(&mut StemCache) -> R) -> R {
        CACHES.with(|caches| match caches.try_borrow_mut() {
            Ok(mut caches) => {
                if caches.len() <= self.language {
                    caches.resize_with(self.language + 1, StemCache::default);
                }
                let cache = &mut caches[self.language];
                if cache.words.len() >= STEM_CACHE_LIMIT || cache.words.bytes() >= STEM_CACHE_BYTES
                {
                    cache.clear();
                }
                f(cache)
            }
            Err(_) => f(&mut StemCache::default()),
        })
    }

    /// Calls `f` with the stem of every indexable word of `text`, in order.
    pub fn for_each_term(&self, text: &str, mut f: impl FnMut(&str)) {
        self.with_cache(|cache| {
            let mut ids = Vec::new();
            cache.scan(self, text, |id| ids.push(id));
            for id in ids {
                f(cache.stems.resolve(id));
            }
        });
    }

    /// The stems of `text`.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_term(text, |t| out.push(t.to_owned()));
        out
    }

    /// Weighted term counts of a post: title and tag words count more than body words.
    pub fn post_terms(&self, title: &str, tags: &[String], body: &str) -> Terms {
        self.with_term_ids(|ids| {
            let title = ids.ids(title);
            let body = ids.ids_until(body, MAX_BODY_WORDS);
            ids.post_terms(&title, tags, [body.as_slice()])
        })
    }

    /// Runs `f` with stem ids that stay comparable, and resolvable to stems, until it
    /// returns: for callers that analyse several texts of one post and compare them.
    pub fn with_term_ids<R>(&self, f: impl FnOnce(&mut TermIds<'_>) -> R) -> R {
        self.with_cache(|cache| {
            f(&mut TermIds {
                analyzer: self,
                cache,
            })
        })
    }
}

/// Stem ids of one analysis session (see [`Analyzer::with_term_ids`]).
pub struct TermIds<'a> {
    analyzer: &'a Analyzer,
    cache: &'a mut StemCache,
}

impl TermIds<'_> {
    /// The stem ids of `text`, in order.
    pub fn ids(&mut self, text: &str) -> Vec<u32> {
        self.ids_until(text, usize::MAX)
    }

    /// The first `limit` stem ids of `text`.
    pub fn ids_until(&mut self, text: &str, limit: usize) -> Vec<u32> {
        let mut out = Vec::new();
        self.cache
            .scan_until(self.analyzer, text, limit, |id| out.push(id));
        out
    }

    /// The stem ids of `text`, in order, added to `out`.
    pub fn extend_ids(&mut self, text: &str, out: &mut Vec<u32>) {
        self.cache.scan(self.analyzer, text, |id| out.push(id));
    }

    /// Weighted term counts of a post from its title's ids, its tags and its body's ids
    /// in text order (the first [`MAX_BODY_WORDS`] count), as [`Analyzer::post_terms`].
    pub fn post_terms<'b>(
        &mut self,
        title: &[u32],
        tags: &[String],
        body: impl IntoIterator<Item = &'b [u32]>,
    ) -> Terms {
        // Counts by stem id in the cache's own scratch space, and the stems in the order
        // of first use: no map, no sort, one string for the lot.
        let mut counts = std::mem::take(&mut self.cache.counts);
        counts.resize(self.cache.stems.len(), 0);
        let mut order: Vec<u32> = Vec::new();
        let mut add = |id: u32, weight: u32| {
            // Tags may bring stems new to the cache.
            if id as usize >= counts.len() {
                counts.resize(id as usize + 1, 0);
            }
            let count = &mut counts[id as usize];
            if *count == 0 {
                order.push(id);
            }
            *count += weight;
        };
        for id in title {
            add(*id, TITLE_WEIGHT);
        }
        for tag in tags {
            let analyzer = self.analyzer;
            self.cache.scan(analyzer, tag, |id| add(id, TAG_WEIGHT));
        }
        for id in body.into_iter().flatten().take(MAX_BODY_WORDS) {
            add(*id, 1);
        }
        let stems = &self.cache.stems;
        let terms = Terms::from_pairs(
            order
                .iter()
                .map(|id| (stems.resolve(*id), counts[*id as usize])),
        );
        for id in order {
            counts[id as usize] = 0;
        }
        self.cache.counts = counts;
        terms
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
        let terms = a.post_terms(
            "Sourdough",
            &["Baking".into()],
            "sourdough bread, sourdough",
        );
        // In the order of first use: title, tags, body.
        assert_eq!(
            terms.iter().collect::<Vec<_>>(),
            vec![("sourdough", 5), ("bake", 3), ("bread", 1)]
        );
        assert_eq!(terms.encoded(), "sourdough 5 bake 3 bread 1");
    }

    #[test]
    fn terms_round_trip_through_the_store_encoding() {
        let terms = Terms::from_pairs([("bake", 3), ("bread", 1), ("oven", 1_234_567)]);
        let stored = Terms::from_encoded(terms.encoded().to_owned());
        assert_eq!(
            stored.iter().collect::<Vec<_>>(),
            vec![("bake", 3), ("bread", 1), ("oven", 1_234_567)]
        );
        assert!(Terms::from_encoded(String::new()).is_empty());
        assert!(Terms::from_pairs([]).is_empty());
        // A damaged pair is skipped, the rest read.
        let damaged = Terms::from_encoded("bake x bread 2 oven".to_owned());
        assert_eq!(damaged.iter().collect::<Vec<_>>(), vec![("bread", 2)]);
        for (stored, read) in [
            ("a 4294967296 b 1", vec![("b", 1)]),
            ("a 4294967295", vec![("a", u32::MAX)]),
            ("a  1 b 2", vec![]),
            ("a 1 ", vec![("a", 1)]),
            ("a -1 b +2 c 3", vec![("c", 3)]),
            ("caf\u{e9} 2", vec![("caf\u{e9}", 2)]),
        ] {
            let terms = Terms::from_encoded(stored.to_owned());
            assert_eq!(terms.iter().collect::<Vec<_>>(), read, "{stored:?}");
        }
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
