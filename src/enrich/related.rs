//! Related posts: an inverted index over every stored post, scored by TF-IDF cosine,
//! tag overlap and shared nearest neighbours.
//!
//! In: each post's weighted term counts (title and tag words weigh more than body words,
//! see [`super::text`]), its tags, URL and date. Out: for a post, up to `k` other posts
//! above a threshold, best first. Terms that appear in more than half the posts are
//! dropped (they tell posts apart no better than stop words), and so are terms of one
//! post alone (they match nothing, and in the norm they only make a post full of names
//! and numbers look unlike everything). A query uses the post's [`QUERY_TERMS`]
//! strongest terms within a budget of postings; terms and tags held by more than a tenth
//! of the posts bring no candidates (they would make every lookup read every post).
//!
//! The similarity is `0.8 × text cosine + 0.2 × tag Jaccard`; posts below `min_score`
//! are never listed. The lookup ranks candidates by the query terms alone; the few it
//! keeps are then scored on every term they share (a long post's query leaves out most
//! of what it shares with its neighbours), and `min_score` applies to that score. The [`RERANK`] most similar candidates are then ranked by
//! `(similarity + shared) / 2`, where `shared` is the share of the query's
//! [`NEIGHBOURS`] nearest posts (by text) that are also the candidate's: posts on one
//! subject have the same neighbours even when they share few words with each other.
//! Measured on the hand-written corpus of `benches/quality.rs`, this lifts precision@3
//! above a plain TF-IDF cosine, where the cosine alone stays just below it.
//!
//! The index is incremental: [`RelatedIndex::insert`] adds one post without touching the
//! others' terms (their norms keep the document frequencies they were built with until
//! the next full rebuild; the drift is tiny); the new post joins the neighbour lists of
//! the posts it is closer to than their farthest neighbour. By default a post's list only
//! holds posts published before it, so lists are stable; with `fill_with_newer` a post
//! with too few older matches fills its list with newer ones until enough older ones
//! exist. A post is never related to itself or to another post with the same URL.

use rustc_hash::FxHashMap as HashMap;

use super::intern::Interner;
use super::worker_threads;
use crate::domain::{IndexDoc, Terms};

/// How many of a post's terms a query uses.
pub const QUERY_TERMS: usize = 100;
/// A lookup reads at most about this many postings (beyond its strongest terms).
const POSTINGS_BUDGET: usize = 8_000;
/// The strongest terms a lookup always uses, whatever the budget.
const QUERY_TERMS_ALWAYS: usize = 8;
/// A query always uses terms found in up to this many posts, however small the index.
const QUERY_COMMON_FLOOR: usize = 100;
/// Share of the similarity that comes from tag overlap (the rest is text similarity).
const TAG_SHARE: f32 = 0.2;
/// How many nearest posts (by text) each post remembers, for shared-neighbour scoring.
pub const NEIGHBOURS: usize = 10;
/// Weight of the shared-neighbour share beside the similarity.
const SHARED_WEIGHT: f32 = 1.0;
/// How many of the most similar candidates are reranked with shared neighbours.
pub const RERANK: usize = 30;
/// A post closer than this (text cosine) is not a neighbour.
const NEIGHBOUR_MIN: f32 = 0.01;

/// A post's id and its related posts, (id, score), best first.
pub type RelatedList = (i64, Vec<(i64, f32)>);

/// Tuning for lookups.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub count: usize,
    pub min_score: f32,
    pub include_newer: bool,
    /// A post with fewer than `count` older matches fills its list with newer ones
    /// (ignored when `include_newer` already lets every newer post in).
    pub fill_with_newer: bool,
}

struct Entry {
    id: i64,
    date: (i64, i64),
    url: Option<String>,
    /// Hash of the URL (0 without one), to spot copies cheaply.
    url_hash: u64,
    tags: Vec<u32>,
    /// (term, 1 + ln(count)), sorted by term.
    tf: Vec<(u32, f32)>,
    norm: f32,
    /// The nearest posts by text, (slot, cosine), sorted by slot.
    neighbours: Vec<(u32, f32)>,
    alive: bool,
}

/// The index; build it once, then insert posts as they arrive.
#[derive(Default)]
pub struct RelatedIndex {
    vocab: Interner,
    df: Vec<u32>,
    postings: Vec<Vec<(u32, f32)>>,
    tag_ids: HashMap<String, u32>,
    tag_postings: Vec<Vec<u32>>,
    entries: Vec<Entry>,
    slots: HashMap<i64, u32>,
    alive: usize,
}

impl std::fmt::Debug for RelatedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelatedIndex")
            .field("posts", &self.alive)
            .field("terms", &self.vocab.len())
            .finish()
    }
}

/// Lowest lookup similarity for a candidate to be kept for exact scoring.
const CANDIDATE_FLOOR: f32 = 0.005;

/// One part's own vocabulary (its terms by local id) and its docs' terms by local id.
type LocalTerms = (Interner, Vec<Vec<(u32, u32)>>);

/// What one lookup found before reranking.
struct Candidates {
    /// The post looked up.
    slot: u32,
    /// The post's own nearest posts by text, (slot, cosine), sorted by slot.
    mine: Vec<(u32, f32)>,
    /// The most similar older posts (or all, with `include_newer`), best first.
    best: Vec<(f32, u32)>,
    /// The most similar newer posts, kept apart to fill a short list.
    newer: Vec<(f32, u32)>,
}

/// Scratch space for one thread's lookups (reused to avoid allocating per query).
pub struct Scratch {
    acc: Vec<f32>,
    touched: Vec<u32>,
    /// The post being scored, as tf × idf² by term (zero elsewhere).
    query: Vec<f32>,
    /// By slot: shares one of the query's (not too common) tags; false between lookups.
    tagged: Vec<bool>,
    /// How many of the query's tags are too common to bring candidates.
    common_tags: usize,
}

impl RelatedIndex {
    /// Builds the index over all `docs` at once (document frequencies are exact).
    pub fn build(docs: Vec<IndexDoc>) -> Self {
        let mut index = Self::unlinked(docs);
        let slots: Vec<u32> = (0..index.entries.len() as u32).collect();
        let found = index.on_all_cores(&slots, |slot, scratch| index.neighbours_of(slot, scratch));
        for (slot, neighbours) in found {
            index.entries[slot as usize].neighbours = neighbours;
        }
        index
    }

    /// Builds the index and every post's related list, with one lookup per post: what
    /// [`Self::build`] then [`Self::related_all`] return, in about half the time.
    pub fn build_with_lists(docs: Vec<IndexDoc>, params: Params) -> (Self, Vec<RelatedList>) {
        let mut index = Self::unlinked(docs);
        let slots: Vec<u32> = (0..index.entries.len() as u32).collect();
        let found = index.on_all_cores(&slots, |slot, scratch| {
            index.accumulate(slot, true, scratch);
            index.candidates(slot, params, scratch)
        });
        // Slots come back in order, so `found[slot]` is that slot's.
        for (slot, candidates) in &found {
            index.entries[*slot as usize].neighbours = candidates.mine.clone();
        }
        let lists = index
            .on_all_cores(&slots, |slot, scratch| {
                let (at, candidates) = &found[slot as usize];
                debug_assert_eq!(*at, slot);
                index.finish(candidates, params, scratch)
            })
            .into_iter()
            .map(|(slot, list)| (index.entries[slot as usize].id, list))
            .collect();
        (index, lists)
    }

    /// The index of `docs` without neighbour lists.
    fn unlinked(mut docs: Vec<IndexDoc>) -> Self {
        let mut index = Self::default();
        let ids = index.intern_all(&mut docs);
        for terms in &ids {
            for (t, _) in terms {
                index.df[*t as usize] += 1;
            }
        }
        index.alive = docs.len();
        for (doc, ids) in docs.into_iter().zip(ids) {
            index.push(doc, ids);
        }
        index
    }

    /// Every doc's terms as (id, count) sorted by id, interning new terms, on all cores;
    /// the docs' term strings are dropped on the way (they are no longer needed).
    fn intern_all(&mut self, docs: &mut [IndexDoc]) -> Vec<Vec<(u32, u32)>> {
        let threads = worker_threads();
        let chunk = docs.len().div_ceil(threads).max(1);
        // Each part numbers its own terms first; then one vocabulary is made of the
        // parts' (small) vocabularies, and each part renumbers its docs.
        let parts: Vec<LocalTerms> = std::thread::scope(|scope| {
            let handles: Vec<_> = docs
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        let mut words = Interner::default();
                        let ids = part
                            .iter()
                            .map(|doc| {
                                doc.terms
                                    .iter()
                                    .filter(|(_, c)| *c > 0)
                                    .map(|(term, count)| (words.intern(term).0, count))
                                    .collect()
                            })
                            .collect();
                        (words, ids)
                    })
                })
                .collect();
            handles.into_iter().map(joined).collect()
        });
        let maps: Vec<Vec<u32>> = parts
            .iter()
            .map(|(words, _)| words.iter().map(|term| self.term_id(term)).collect())
            .collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .zip(&maps)
                .zip(docs.chunks_mut(chunk))
                .map(|(((_, ids), map), part)| {
                    scope.spawn(move || {
                        for doc in part.iter_mut() {
                            doc.terms = Terms::default();
                        }
                        ids.into_iter()
                            .map(|mut terms: Vec<(u32, u32)>| {
                                for (t, _) in &mut terms {
                                    *t = map[*t as usize];
                                }
                                terms.sort_unstable();
                                terms.dedup_by_key(|(t, _)| *t);
                                terms
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(joined).collect()
        })
    }

    /// `work` for every slot, on all cores, each thread with its own scratch space.
    fn on_all_cores<T: Send>(
        &self,
        slots: &[u32],
        work: impl Fn(u32, &mut Scratch) -> T + Sync,
    ) -> Vec<(u32, T)> {
        super::map_on_all_cores(
            slots,
            || self.scratch(),
            |scratch, slot| (*slot, work(*slot, scratch)),
        )
    }

    /// The nearest posts of `slot` by text, sorted by slot.
    fn neighbours_of(&self, slot: u32, scratch: &mut Scratch) -> Vec<(u32, f32)> {
        // Neighbours are by text alone: posts that only share a tag are not candidates.
        self.accumulate(slot, false, scratch);
        let found = self.nearest(slot, scratch);
        for other in scratch.touched.drain(..) {
            scratch.acc[other as usize] = 0.0;
        }
        found
    }

    /// From an accumulated lookup, the [`NEIGHBOURS`] closest posts by text (not the
    /// post itself, a copy of it or a removed post), sorted by slot.
    fn nearest(&self, slot: u32, scratch: &Scratch) -> Vec<(u32, f32)> {
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(NEIGHBOURS + 1);
        for &other in &scratch.touched {
            let cosine = scratch.acc[other as usize];
            if other != slot && self.alive_at(other) {
                self.offer_neighbour(slot, &mut best, other, cosine);
            }
        }
        best.sort_unstable_by_key(|(o, _)| *o);
        best
    }

    /// Keeps `other` among the [`NEIGHBOURS`] closest posts of `slot` (best first) when
    /// it is close enough and not a copy of it.
    fn offer_neighbour(&self, slot: u32, best: &mut Vec<(u32, f32)>, other: u32, cosine: f32) {
        if cosine < NEIGHBOUR_MIN || (best.len() == NEIGHBOURS && cosine <= best[NEIGHBOURS - 1].1)
        {
            return;
        }
        let (me, them) = (&self.entries[slot as usize], &self.entries[other as usize]);
        if me.url_hash != 0 && them.url_hash == me.url_hash && them.url == me.url {
            return;
        }
        // One neighbour per URL, as in lists: copies of one post would crowd out the rest.
        if them.url_hash != 0
            && let Some(k) = best.iter().position(|(o, _)| {
                let kept = &self.entries[*o as usize];
                kept.url_hash == them.url_hash && kept.url == them.url
            })
        {
            if best[k].1 >= cosine {
                return;
            }
            best.remove(k);
        }
        let at = best
            .iter()
            .position(|(o, c)| cosine > *c || (cosine == *c && other < *o))
            .unwrap_or(best.len());
        best.insert(at, (other, cosine));
        best.truncate(NEIGHBOURS);
    }

    /// Adds a post (or replaces it, when its id is already indexed).
    pub fn insert(&mut self, doc: IndexDoc) {
        self.remove(doc.id);
        let ids = self.intern(&doc.terms);
        for (t, _) in &ids {
            self.df[*t as usize] += 1;
        }
        self.alive += 1;
        self.push(doc, ids);
        // Its neighbours, and it becomes a neighbour of the posts it is closer to than
        // their farthest one.
        let slot = (self.entries.len() - 1) as u32;
        let mut scratch = self.scratch();
        let neighbours = self.neighbours_of(slot, &mut scratch);
        for &(other, cosine) in &neighbours {
            let theirs = &mut self.entries[other as usize].neighbours;
            if theirs.len() == NEIGHBOURS {
                let Some((far, far_cosine)) = theirs
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
                    .map(|(i, (_, c))| (i, *c))
                else {
                    continue;
                };
                if cosine <= far_cosine {
                    continue;
                }
                theirs.remove(far);
            }
            let at = theirs.partition_point(|(o, _)| *o < slot);
            theirs.insert(at, (slot, cosine));
        }
        self.entries[slot as usize].neighbours = neighbours;
    }

    /// Adds (or replaces) the changed posts and returns the related lists that may have
    /// changed: theirs, those of the posts that listed one of them (`referring`), and,
    /// when older posts may list newer ones, those of each changed post's closest
    /// neighbours. Lists of posts not touched stay as they are: a new post costs a few
    /// lookups, not a rebuild.
    pub fn update(
        &mut self,
        changed: Vec<IndexDoc>,
        referring: &[i64],
        params: Params,
    ) -> Vec<(i64, Vec<(i64, f32)>)> {
        let ids: Vec<i64> = changed.iter().map(|d| d.id).collect();
        for doc in changed {
            self.insert(doc);
        }
        let mut scratch = self.scratch();
        let mut affected: Vec<i64> = ids.iter().chain(referring).copied().collect();
        if params.include_newer || params.fill_with_newer {
            // Older posts may now list a changed one: look at its closest neighbours.
            let wider = Params {
                count: params.count * 3,
                include_newer: true,
                ..params
            };
            let older_only = Params {
                include_newer: false,
                fill_with_newer: false,
                ..params
            };
            for id in &ids {
                for (other, _) in self.related(*id, wider, &mut scratch) {
                    // A list already full of older posts no longer changes.
                    if params.include_newer
                        || self.related(other, older_only, &mut scratch).len() < params.count
                    {
                        affected.push(other);
                    }
                }
            }
        }
        affected.sort_unstable();
        affected.dedup();
        affected
            .into_iter()
            .filter(|id| self.contains(*id))
            .map(|id| (id, self.related(id, params, &mut scratch)))
            .collect()
    }

    /// Forgets a post; its slot stays but is skipped.
    pub fn remove(&mut self, id: i64) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        let entry = &mut self.entries[slot as usize];
        entry.alive = false;
        for (t, _) in &entry.tf {
            self.df[*t as usize] = self.df[*t as usize].saturating_sub(1);
        }
        self.alive -= 1;
    }

    /// Slots held by removed or replaced posts: lookups still pass over them, so the
    /// caller rebuilds once they are many.
    pub fn dead_slots(&self) -> usize {
        self.entries.len() - self.alive
    }

    pub fn len(&self) -> usize {
        self.alive
    }

    pub fn is_empty(&self) -> bool {
        self.alive == 0
    }

    pub fn contains(&self, id: i64) -> bool {
        self.slots.contains_key(&id)
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            acc: vec![0.0; self.entries.len()],
            touched: Vec::new(),
            query: Vec::new(),
            tagged: vec![false; self.entries.len()],
            common_tags: 0,
        }
    }

    /// The related posts of `id`, best first, as (id, score).
    pub fn related(&self, id: i64, params: Params, scratch: &mut Scratch) -> Vec<(i64, f32)> {
        let Some(&slot) = self.slots.get(&id) else {
            return Vec::new();
        };
        self.accumulate(slot, true, scratch);
        self.rank(slot, params, scratch)
    }

    /// Accumulates, in `scratch`, the text cosine of `slot` with every post that shares
    /// one of its query terms, and (`with_tags`) marks the posts sharing a tag as
    /// candidates.
    fn accumulate(&self, slot: u32, with_tags: bool, scratch: &mut Scratch) {
        let me = &self.entries[slot as usize];
        if scratch.acc.len() < self.entries.len() {
            scratch.acc.resize(self.entries.len(), 0.0);
            scratch.tagged.resize(self.entries.len(), false);
        }

        // The query: the post's strongest terms, weighted as in its own unit vector.
        // Terms in more than a tenth of the posts are left out of the query: they add
        // little to the ranking and their posting lists are most of the cost.
        // (Never more than the postings budget, which the always-used terms could
        // otherwise exceed many times over on a feed written from a few templates.)
        let common = (self.alive / 10).clamp(QUERY_COMMON_FLOOR, POSTINGS_BUDGET);
        let mut query: Vec<(u32, f32)> = me
            .tf
            .iter()
            .filter(|(t, _)| self.df[*t as usize] as usize <= common)
            .filter_map(|(t, tf)| self.idf(*t).map(|idf| (*t, tf * idf)))
            .collect();
        query.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        query.truncate(QUERY_TERMS);
        // A budget of postings per lookup keeps very large indexes fast: the strongest
        // terms always count, weaker ones only while the budget lasts.
        let mut spent = 0;
        let mut kept = 0;
        query.retain(|(t, _)| {
            let df = self.df[*t as usize] as usize;
            kept += 1;
            if kept <= QUERY_TERMS_ALWAYS || spent + df <= POSTINGS_BUDGET {
                spent += df;
                true
            } else {
                false
            }
        });
        let my_norm = me.norm.max(1e-9);

        // Accumulate cosine similarity: postings already hold tf / norm of their post.
        let acc = &mut scratch.acc;
        let touched = &mut scratch.touched;
        for (t, qw) in &query {
            let factor = qw * self.idf(*t).unwrap_or(0.0) / my_norm;
            for &(other, weight) in &self.postings[*t as usize] {
                let cell = &mut acc[other as usize];
                if *cell == 0.0 {
                    touched.push(other);
                }
                *cell += factor * weight;
            }
        }
        // Posts that share a tag are candidates even without a strong shared term.
        scratch.common_tags = 0;
        if !with_tags {
            return;
        }
        for tag in &me.tags {
            // A tag on most posts ("Uncategorized") makes everything a candidate and
            // tells nothing: like a common term, it brings no candidates.
            let holders = &self.tag_postings[*tag as usize];
            if holders.len() > common {
                scratch.common_tags += 1;
                continue;
            }
            for &other in holders {
                scratch.tagged[other as usize] = true;
                let cell = &mut acc[other as usize];
                if *cell == 0.0 {
                    *cell = f32::MIN_POSITIVE;
                    touched.push(other);
                }
            }
        }
    }

    /// Ranks the accumulated candidates of `slot` (and clears `scratch`).
    fn rank(&self, slot: u32, params: Params, scratch: &mut Scratch) -> Vec<(i64, f32)> {
        let found = self.candidates(slot, params, scratch);
        self.finish(&found, params, scratch)
    }

    /// From an accumulated lookup of `slot` (cleared on the way): its own nearest posts
    /// and the most similar older and newer candidates, before shared neighbours count.
    fn candidates(&self, slot: u32, params: Params, scratch: &mut Scratch) -> Candidates {
        let me = &self.entries[slot as usize];
        let acc = &mut scratch.acc;
        let touched = &mut scratch.touched;
        // The most similar few (by text and tags) are reranked with their shared
        // neighbours: older posts, and newer ones apart when they only fill a list that
        // older ones leave short.
        let keep = RERANK.max(params.count + 4);
        let fill = params.fill_with_newer && !params.include_newer;
        let mut best: Vec<(f32, u32)> = Vec::with_capacity(keep + 1);
        let mut newer: Vec<(f32, u32)> = Vec::new();
        // Its own nearest posts, found on the way.
        let mut mine: Vec<(u32, f32)> = Vec::with_capacity(NEIGHBOURS + 1);
        let floor_of = |list: &[(f32, u32)]| {
            if list.len() == keep {
                list[keep - 1].0
            } else {
                CANDIDATE_FLOOR
            }
        };
        // The most tag overlap can add, without reading the other post: a post that
        // shares none of the query's marked tags shares at most its common ones, and
        // Jaccard is at most shared / (the query's tags).
        let unmarked_tag_bound = if me.tags.is_empty() {
            0.0
        } else {
            TAG_SHARE * scratch.common_tags as f32 / me.tags.len() as f32
        };
        let tagged = &mut scratch.tagged;
        for &other in touched.iter() {
            let cosine = acc[other as usize].min(1.0);
            acc[other as usize] = 0.0;
            let my_tag_bound = if std::mem::take(&mut tagged[other as usize]) {
                TAG_SHARE
            } else {
                unmarked_tag_bound
            };
            // Cheapest bound first, before reading the other post: most candidates can
            // neither be a neighbour nor make either list.
            let near = cosine >= NEIGHBOUR_MIN
                && (mine.len() < NEIGHBOURS || cosine > mine[NEIGHBOURS - 1].1);
            let lowest = if fill {
                floor_of(&best).min(floor_of(&newer))
            } else {
                floor_of(&best)
            };
            if !near && (1.0 - TAG_SHARE) * cosine + my_tag_bound < lowest {
                continue;
            }
            if other == slot || !self.alive_at(other) {
                continue;
            }
            self.offer_neighbour(slot, &mut mine, other, cosine);
            let them = &self.entries[other as usize];
            let is_newer = them.date >= me.date;
            if is_newer && !params.include_newer && !fill {
                continue;
            }
            let best = if is_newer && !params.include_newer {
                &mut newer
            } else {
                &mut best
            };
            // Cheap bound first: most candidates cannot make the list.
            let tag_bound = if them.tags.is_empty() {
                0.0
            } else {
                my_tag_bound
            };
            let floor = if best.len() == keep {
                best[keep - 1].0
            } else {
                CANDIDATE_FLOOR
            };
            if (1.0 - TAG_SHARE) * cosine + tag_bound < floor {
                continue;
            }
            if me.url_hash != 0 && them.url_hash == me.url_hash && them.url == me.url {
                continue; // a duplicate of this post
            }
            let similarity = (1.0 - TAG_SHARE) * cosine + TAG_SHARE * jaccard(&me.tags, &them.tags);
            if similarity < floor {
                continue;
            }
            // One place per URL: copies of one post (aggregators, reposts) would fill the
            // kept few and leave the list short once they are folded into one.
            if them.url_hash != 0
                && let Some(k) = best.iter().position(|(_, o)| {
                    let kept = &self.entries[*o as usize];
                    kept.url_hash == them.url_hash && kept.url == them.url
                })
            {
                if best[k].0 >= similarity {
                    continue;
                }
                best.remove(k);
            }
            let at = best
                .iter()
                .position(|(s, o)| {
                    similarity > *s
                        || (similarity == *s && them.date > self.entries[*o as usize].date)
                })
                .unwrap_or(best.len());
            best.insert(at, (similarity, other));
            best.truncate(keep);
        }
        touched.clear();
        mine.sort_unstable_by_key(|(o, _)| *o);
        Candidates {
            slot,
            mine,
            best,
            newer,
        }
    }

    /// The related list from [`Self::candidates`], once every post's neighbours are
    /// known.
    fn finish(&self, found: &Candidates, params: Params, scratch: &mut Scratch) -> Vec<(i64, f32)> {
        // The lookup ranked by the query's strongest terms alone; the few kept are
        // scored on all their terms, and only then held to `min_score` (a long post's
        // query leaves out most of what it shares with its neighbours).
        let me = &self.entries[found.slot as usize];
        let query = &mut scratch.query;
        if query.len() < self.df.len() {
            query.resize(self.df.len(), 0.0);
        }
        for (t, w) in &me.tf {
            if let Some(idf) = self.idf(*t) {
                query[*t as usize] = w * idf * idf / me.norm.max(1e-9);
            }
        }
        let query = &*query;
        let exact = |list: &[(f32, u32)]| -> Vec<(f32, u32)> {
            list.iter()
                .filter_map(|&(_, other)| {
                    let them = &self.entries[other as usize];
                    let dot: f32 = them.tf.iter().map(|(t, w)| w * query[*t as usize]).sum();
                    let cosine = if them.norm > 0.0 {
                        (dot / them.norm).min(1.0)
                    } else {
                        0.0
                    };
                    let similarity =
                        (1.0 - TAG_SHARE) * cosine + TAG_SHARE * jaccard(&me.tags, &them.tags);
                    (similarity >= params.min_score).then_some((similarity, other))
                })
                .collect()
        };
        let best = self.rerank(&found.mine, &exact(&found.best));

        let mut out: Vec<(i64, f32)> = Vec::with_capacity(params.count);
        let mut urls: Vec<&str> = Vec::new();
        let older = self.distinct(best, params.count, &mut urls, &mut out);
        if older < params.count {
            let newer = self.rerank(&found.mine, &exact(&found.newer));
            // Too few older matches: newer ones fill the rest (the list settles once
            // enough older posts exist, which is what keeps lists stable).
            self.distinct(newer, params.count, &mut urls, &mut out);
            out.sort_by(|a, b| b.1.total_cmp(&a.1));
        }
        for (t, _) in &me.tf {
            scratch.query[*t as usize] = 0.0;
        }
        out
    }

    /// Scores candidates (similarity, slot) with the neighbours they share with the
    /// query: posts on one subject have the same nearest posts, even when they share
    /// few words with each other. Best first.
    fn rerank(&self, mine: &[(u32, f32)], candidates: &[(f32, u32)]) -> Vec<(f32, u32)> {
        let mut scored: Vec<(f32, u32)> = candidates
            .iter()
            .map(|&(similarity, other)| {
                let theirs = &self.entries[other as usize].neighbours;
                let shared = self.shared_neighbours(mine, theirs) as f32 / NEIGHBOURS as f32;
                (
                    (similarity + SHARED_WEIGHT * shared) / (1.0 + SHARED_WEIGHT),
                    other,
                )
            })
            .collect();
        scored.sort_by(|a, b| {
            b.0.total_cmp(&a.0).then_with(|| {
                self.entries[b.1 as usize]
                    .date
                    .cmp(&self.entries[a.1 as usize].date)
            })
        });
        scored
    }

    /// Appends `candidates` (best first) to `out` up to `count`, one per URL; returns
    /// how many `out` holds.
    fn distinct<'a>(
        &'a self,
        candidates: Vec<(f32, u32)>,
        count: usize,
        urls: &mut Vec<&'a str>,
        out: &mut Vec<(i64, f32)>,
    ) -> usize {
        for (score, other) in candidates {
            if out.len() == count {
                break;
            }
            let them = &self.entries[other as usize];
            if let Some(url) = them.url.as_deref() {
                if urls.contains(&url) {
                    continue; // two copies of one post: keep the better one
                }
                urls.push(url);
            }
            out.push((them.id, score));
        }
        out.len()
    }

    /// How many live posts two neighbour lists (sorted by slot) have in common.
    fn shared_neighbours(&self, a: &[(u32, f32)], b: &[(u32, f32)]) -> usize {
        let (mut i, mut j, mut n) = (0, 0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    n += usize::from(self.alive_at(a[i].0));
                    i += 1;
                    j += 1;
                }
            }
        }
        n
    }

    fn alive_at(&self, slot: u32) -> bool {
        self.entries[slot as usize].alive
    }

    /// Related lists for every post, computed on all cores.
    pub fn related_all(&self, params: Params) -> Vec<RelatedList> {
        let slots: Vec<u32> = (0..self.entries.len() as u32)
            .filter(|slot| self.alive_at(*slot))
            .collect();
        self.on_all_cores(&slots, |slot, scratch| {
            self.accumulate(slot, true, scratch);
            self.rank(slot, params, scratch)
        })
        .into_iter()
        .map(|(slot, list)| (self.entries[slot as usize].id, list))
        .collect()
    }

    /// Inverse document frequency, or `None` for a term too common to count.
    fn idf(&self, term: u32) -> Option<f32> {
        let df = self.df[term as usize];
        let n = self.alive as f32;
        // A term of one post alone matches nothing: leaving it out of the norm keeps
        // posts full of rare words (names, numbers) from looking unlike everything.
        if df < 2 || (self.alive >= 10 && df as f32 > 0.5 * n) {
            return None;
        }
        Some((n / df as f32).ln().max(0.0) + 0.1)
    }

    /// The id of `term`, a new one when it is new.
    fn term_id(&mut self, term: &str) -> u32 {
        let (id, new) = self.vocab.intern(term);
        if new {
            self.df.push(0);
            self.postings.push(Vec::new());
        }
        id
    }

    fn intern(&mut self, terms: &Terms) -> Vec<(u32, u32)> {
        let mut ids: Vec<(u32, u32)> = terms
            .iter()
            .filter(|(_, c)| *c > 0)
            .map(|(term, count)| (self.term_id(term), count))
            .collect();
        ids.sort_unstable();
        ids.dedup_by_key(|(t, _)| *t);
        ids
    }

    fn push(&mut self, doc: IndexDoc, ids: Vec<(u32, u32)>) {
        let slot = self.entries.len() as u32;
        let tf: Vec<(u32, f32)> = ids
            .iter()
            .map(|(t, c)| (*t, 1.0 + (*c as f32).ln()))
            .collect();
        let idf: Vec<Option<f32>> = tf.iter().map(|(t, _)| self.idf(*t)).collect();
        let norm = tf
            .iter()
            .zip(&idf)
            .filter_map(|((_, w), idf)| idf.map(|idf| (w * idf).powi(2)))
            .sum::<f32>()
            .sqrt();
        // Postings carry tf / norm, so a lookup sums cosine terms without a division per
        // candidate. Norms use the document frequencies of the moment (see module docs).
        // Only the terms the norm counts are posted: a term of this post alone (df 1
        // when it arrives) would otherwise score later matches against a norm that left
        // it out, up to tf / 1e-9 for a post whose words are all new. Such terms match
        // from the next rebuild on.
        if norm > 0.0 {
            for ((t, w), idf) in tf.iter().zip(&idf) {
                if idf.is_some() {
                    self.postings[*t as usize].push((slot, w / norm));
                }
            }
        }
        let mut tags: Vec<u32> = doc
            .tags
            .iter()
            .map(|tag| {
                let key = tag.to_lowercase();
                match self.tag_ids.get(&key) {
                    Some(id) => *id,
                    None => {
                        let id = self.tag_postings.len() as u32;
                        self.tag_ids.insert(key, id);
                        self.tag_postings.push(Vec::new());
                        id
                    }
                }
            })
            .collect();
        tags.sort_unstable();
        tags.dedup();
        for tag in &tags {
            self.tag_postings[*tag as usize].push(slot);
        }
        let url_hash = doc.url.as_deref().map_or(0, |u| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            u.hash(&mut h);
            h.finish() | 1
        });
        self.entries.push(Entry {
            id: doc.id,
            date: doc.date,
            url: doc.url,
            url_hash,
            tags,
            tf,
            norm,
            neighbours: Vec::new(),
            alive: true,
        });
        self.slots.insert(doc.id, slot);
    }
}

/// Threads for work spread over all cores (at most 8).
/// A worker's result; a panic in it is raised again here, never dropped.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn jaccard(a: &[u32], b: &[u32]) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let shared = a.iter().filter(|t| b.binary_search(t).is_ok()).count();
    shared as f32 / (a.len() + b.len() - shared) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::text::Analyzer;

    fn doc(id: i64, title: &str, tags: &[&str], body: &str) -> IndexDoc {
        let analyzer = Analyzer::new("english");
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        IndexDoc {
            id,
            date: (id * 1000, id),
            url: Some(format!("https://e.org/{id}")),
            terms: analyzer.post_terms(title, &tags, body),
            tags,
        }
    }

    fn corpus() -> Vec<IndexDoc> {
        vec![
            doc(
                1,
                "Sourdough starter care",
                &["baking"],
                "feed the starter flour and water, keep the jar warm",
            ),
            doc(
                2,
                "Fixing a flat tyre",
                &["cycling"],
                "tyre levers, spare tube and a pump fix a puncture",
            ),
            doc(
                3,
                "Home DNS resolver",
                &["networking"],
                "run unbound on a small server for the home network",
            ),
            doc(
                4,
                "Baking sourdough bread",
                &["baking"],
                "a lively starter, flour, water and a long proof make bread",
            ),
            doc(
                5,
                "Tyre pressure for winter cycling",
                &["cycling"],
                "lower tyre pressure grips wet roads; carry a pump",
            ),
            doc(
                6,
                "VLANs on a home network",
                &["networking"],
                "a managed switch and router split the network",
            ),
            doc(
                7,
                "Rye bread and its starter",
                &["baking"],
                "rye flour ferments fast; the starter needs feeding",
            ),
            doc(
                8,
                "Patching a tube",
                &["cycling"],
                "find the puncture, patch the tube, pump the tyre",
            ),
            doc(
                9,
                "Router firewall rules",
                &["networking"],
                "the router filters traffic between network segments",
            ),
            doc(
                10,
                "Bread flour protein",
                &["baking"],
                "flour protein becomes gluten that holds the bread",
            ),
            doc(
                11,
                "Gardening in autumn",
                &["garden"],
                "plant garlic and mulch the beds with leaves",
            ),
            doc(
                12,
                "Chain care for cycling",
                &["cycling"],
                "clean and lube the chain after wet rides",
            ),
        ]
    }

    const P: Params = Params {
        count: 3,
        min_score: 0.05,
        include_newer: false,
        fill_with_newer: false,
    };

    #[test]
    fn finds_posts_on_the_same_topic_published_before() {
        let index = RelatedIndex::build(corpus());
        let mut s = index.scratch();
        let related: Vec<i64> = index
            .related(7, P, &mut s)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        // The two older baking posts, best first; nothing unrelated scores above the bar.
        assert_eq!(
            related[..2].iter().filter(|id| [1, 4].contains(id)).count(),
            2,
            "{related:?}"
        );
        assert!(related.iter().all(|id| *id < 7), "{related:?}");
        let related: Vec<i64> = index
            .related(8, P, &mut s)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            related[..2].iter().filter(|id| [2, 5].contains(id)).count(),
            2,
            "{related:?}"
        );
    }

    /// A made-up word of its own for `n` (consonants only, so the stemmer leaves it).
    fn unique_word(mut n: usize) -> String {
        const LETTERS: &[u8] = b"bcdfghjklmnpqrtvwxz";
        let mut word = String::from("zq");
        loop {
            word.push(char::from(LETTERS[n % LETTERS.len()]));
            n /= LETTERS.len();
            if n == 0 {
                return word;
            }
        }
    }

    #[test]
    fn a_tag_on_every_post_brings_no_candidates_and_no_lists() {
        // WordPress's default category on 150 posts that share no word at all.
        let docs: Vec<IndexDoc> = (1..=150)
            .map(|id| {
                let words: Vec<String> = (0..6).map(|k| unique_word(id * 6 + k)).collect();
                doc(
                    id as i64,
                    &words[0],
                    &["Uncategorized"],
                    &words[1..].join(" "),
                )
            })
            .collect();
        let (_, lists) = RelatedIndex::build_with_lists(docs, P);
        let listed: usize = lists.iter().map(|(_, l)| l.len()).sum();
        assert_eq!(listed, 0, "posts related by the default category alone");
    }

    #[test]
    fn min_score_holds_on_all_shared_terms_not_only_the_query() {
        // 2,000 posts: the 40 words of 402 of them are too common to be looked up (more
        // than a tenth of the posts) but still say how alike two posts are.
        let shared: Vec<String> = (0..40).map(|k| unique_word(100_000 + k)).collect();
        let docs: Vec<IndexDoc> = (1..=2000usize)
            .map(|id| {
                let mut words: Vec<String> = (0..3).map(|k| unique_word(id * 3 + k)).collect();
                if id <= 400 || id >= 1999 {
                    words.extend(shared.iter().cloned());
                }
                if id >= 1999 {
                    words.push(unique_word(900_000));
                }
                doc(id as i64, &words[0], &[], &words[1..].join(" "))
            })
            .collect();
        let strict = Params {
            min_score: 0.5,
            ..P
        };
        let (_, lists) = RelatedIndex::build_with_lists(docs, strict);
        let last = &lists.iter().find(|(id, _)| *id == 2000).unwrap().1;
        // Found by their one rare word (a weak lookup score), kept on the full cosine.
        assert!(last.iter().any(|(id, _)| *id == 1999), "{last:?}");
    }

    #[test]
    fn many_copies_of_one_post_take_one_place() {
        // 31 copies of one baking post under one URL (more than the candidates kept),
        // older than the post looked up, three other baking posts, and 40 posts on
        // nothing in common: the list still holds three distinct posts.
        let mut docs: Vec<IndexDoc> = (100..140usize)
            .map(|id| {
                let words: Vec<String> = (0..4).map(|k| unique_word(id * 4 + k)).collect();
                doc(id as i64, &words[0], &[], &words[1..].join(" "))
            })
            .collect();
        for id in 1..=31 {
            let mut copy = doc(
                id,
                "Rye sourdough starter feeding",
                &[],
                "Feed the rye sourdough starter with flour and water twice a day.",
            );
            copy.url = Some("https://e.org/rye".into());
            docs.push(copy);
        }
        docs.push(doc(
            41,
            "Baking bread with a starter",
            &[],
            "The sourdough starter and flour make the dough rise.",
        ));
        docs.push(doc(
            42,
            "Flour for bread",
            &[],
            "Rye flour and wheat flour in a sourdough loaf.",
        ));
        docs.push(doc(
            43,
            "Water in dough",
            &[],
            "More water makes a sourdough dough open; feed the starter.",
        ));
        docs.push(doc(
            44,
            "My rye starter",
            &[],
            "Feeding a rye sourdough starter with flour and water.",
        ));
        let (_, lists) = RelatedIndex::build_with_lists(docs, P);
        let last = &lists.iter().find(|(id, _)| *id == 44).unwrap().1;
        assert_eq!(last.len(), 3, "{last:?}");
        assert_eq!(
            last.iter().filter(|(id, _)| *id <= 31).count(),
            1,
            "{last:?}"
        );
    }

    #[test]
    fn an_inserted_post_of_new_words_does_not_top_later_lists() {
        let mut index = RelatedIndex::build(corpus());
        // Every word of it is new to the index.
        index.insert(doc(100, "Zigbee thermostat", &[], ""));
        // A post on baking that mentions it once.
        index.insert(doc(
            101,
            "Sourdough starter care",
            &[],
            "Feed the sourdough starter with flour and water; the zigbee kitchen sensor says it is warm.",
        ));
        let mut s = index.scratch();
        let related = index.related(101, P, &mut s);
        assert!(
            related
                .iter()
                .all(|(id, score)| *id != 100 && *score <= 1.0),
            "{related:?}"
        );
        assert!(!related.is_empty(), "the baking posts are still related");
    }

    #[test]
    fn never_lists_newer_posts_unless_asked() {
        let index = RelatedIndex::build(corpus());
        let mut s = index.scratch();
        assert!(index.related(1, P, &mut s).is_empty());
        let newer = Params {
            include_newer: true,
            fill_with_newer: false,
            ..P
        };
        let related: Vec<i64> = index
            .related(1, newer, &mut s)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(related.contains(&4) && related.contains(&7), "{related:?}");
    }

    #[test]
    fn fills_a_short_list_with_newer_posts_until_older_ones_suffice() {
        let index = RelatedIndex::build(corpus());
        let mut s = index.scratch();
        let fill = Params {
            fill_with_newer: true,
            ..P
        };
        // Post 1 is the oldest: without fill it lists nothing, with fill newer posts on
        // its topic.
        let oldest: Vec<i64> = index
            .related(1, fill, &mut s)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(oldest.contains(&4) && oldest.contains(&7), "{oldest:?}");
        // A post with a full list of older matches keeps exactly that list.
        for id in 1..=12 {
            let older = index.related(id, P, &mut s);
            let filled = index.related(id, fill, &mut s);
            if older.len() == P.count {
                assert_eq!(filled, older, "post {id}");
            } else {
                assert!(filled.len() >= older.len(), "post {id}");
                assert!(older.iter().all(|o| filled.contains(o)), "post {id}");
            }
        }
    }

    #[test]
    fn an_update_recomputes_only_lists_that_can_take_the_new_post() {
        let mut docs = corpus();
        let newest = docs.pop().unwrap();
        let mut index = RelatedIndex::build(docs);
        let fill = Params {
            fill_with_newer: true,
            ..P
        };
        let mut s = index.scratch();
        let full: Vec<i64> = (1..=11)
            .filter(|id| index.related(*id, P, &mut s).len() == P.count)
            .collect();
        let changed = index.update(vec![newest.clone()], &[], fill);
        let ids: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
        assert!(ids.contains(&newest.id), "{ids:?}");
        assert!(ids.iter().all(|id| !full.contains(id)), "{ids:?} {full:?}");
        assert!(
            ids.len() > 1,
            "an older post with a short list takes the new one: {ids:?}"
        );
    }

    #[test]
    fn never_lists_itself_or_a_duplicate_url() {
        let mut docs = corpus();
        let mut copy = doc(
            13,
            "Rye bread and its starter",
            &["baking"],
            "rye flour ferments fast; the starter needs feeding",
        );
        copy.url = Some("https://e.org/7".into());
        docs.push(copy);
        let mut twin = doc(
            14,
            "Rye bread and its starter again",
            &["baking"],
            "rye flour ferments fast; the starter",
        );
        twin.url = Some("https://e.org/x".into());
        docs.push(twin);
        let mut third = doc(
            15,
            "Rye bread copy",
            &["baking"],
            "rye flour ferments fast; the starter",
        );
        third.url = Some("https://e.org/x".into());
        docs.push(third);
        let index = RelatedIndex::build(docs);
        let mut s = index.scratch();
        let related: Vec<i64> = index
            .related(13, P, &mut s)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(
            !related.contains(&13) && !related.contains(&7),
            "{related:?}"
        );
        let newer = Params {
            include_newer: true,
            fill_with_newer: false,
            ..P
        };
        let related: Vec<i64> = index
            .related(7, newer, &mut s)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(!related.contains(&13), "{related:?}");
        assert!(
            !(related.contains(&14) && related.contains(&15)),
            "one of two copies: {related:?}"
        );
    }

    #[test]
    fn insert_matches_a_rebuild_for_the_new_post() {
        let docs = corpus();
        let full = RelatedIndex::build(docs.clone());
        let mut incremental = RelatedIndex::build(docs[..11].to_vec());
        incremental.insert(docs[11].clone());
        let (mut a, mut b) = (full.scratch(), incremental.scratch());
        let from_full: Vec<i64> = full
            .related(12, P, &mut a)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let from_insert: Vec<i64> = incremental
            .related(12, P, &mut b)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(from_full, from_insert);
        assert_eq!(incremental.len(), 12);
    }

    #[test]
    fn removal_and_reinsertion_replace_a_post() {
        let mut index = RelatedIndex::build(corpus());
        index.insert(doc(
            10,
            "Garlic and leaves",
            &["garden"],
            "plant garlic, mulch beds with leaves",
        ));
        assert_eq!(index.len(), 12);
        let mut s = index.scratch();
        let related: Vec<i64> = index
            .related(
                11,
                Params {
                    include_newer: true,
                    fill_with_newer: false,
                    ..P
                },
                &mut s,
            )
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(related.first(), Some(&10), "{related:?}");
        index.remove(10);
        assert!(!index.contains(10));
        let related: Vec<i64> = index
            .related(
                11,
                Params {
                    include_newer: true,
                    fill_with_newer: false,
                    ..P
                },
                &mut s,
            )
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(!related.contains(&10));
    }

    #[test]
    fn scores_are_bounded_and_sorted() {
        let index = RelatedIndex::build(corpus());
        let lists = index.related_all(Params {
            include_newer: true,
            fill_with_newer: false,
            ..P
        });
        // Not vacuous: most posts of the corpus have a list, several with more than one.
        assert!(lists.iter().filter(|(_, l)| !l.is_empty()).count() * 2 >= lists.len());
        assert!(lists.iter().any(|(_, l)| l.len() >= 2));
        for (_, list) in lists {
            assert!(list.windows(2).all(|w| w[0].1 >= w[1].1));
            assert!(list.iter().all(|(_, s)| (0.05..=1.0).contains(s)));
        }
    }

    #[test]
    fn building_with_lists_gives_what_build_then_related_all_gives() {
        for params in [
            P,
            Params {
                include_newer: true,
                fill_with_newer: false,
                ..P
            },
            Params {
                fill_with_newer: false,
                ..P
            },
        ] {
            let index = RelatedIndex::build(corpus());
            let mut apart = index.related_all(params);
            let (empty, none) = RelatedIndex::build_with_lists(Vec::new(), params);
            assert!(empty.is_empty() && none.is_empty());
            let (together_index, mut together) = RelatedIndex::build_with_lists(corpus(), params);
            apart.sort_by_key(|(id, _)| *id);
            together.sort_by_key(|(id, _)| *id);
            assert!(apart.iter().any(|(_, l)| !l.is_empty()));
            assert_eq!(apart, together);
            // The index it returns answers later lookups like a plain build.
            let mut s = together_index.scratch();
            for (id, list) in &apart {
                assert_eq!(&together_index.related(*id, params, &mut s), list);
            }
        }
    }
}
