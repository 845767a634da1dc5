//! Related-posts quality on a labelled corpus: how often a related post shares the
//! post's topic, against choosing at random. Run with `--nocapture` to see the figures.

#[path = "../../benches/support/corpus.rs"]
mod corpus;

use herald::domain::IndexDoc;
use herald::enrich::related::{Params, RelatedIndex};
use herald::enrich::text::Analyzer;

struct Quality {
    precision: f64,
    baseline: f64,
    coverage: f64,
}

fn measure(posts: &[corpus::CorpusPost], include_newer: bool) -> Quality {
    let analyzer = Analyzer::new("english");
    let docs: Vec<IndexDoc> = posts
        .iter()
        .map(|p| IndexDoc {
            id: p.id,
            date: (p.id * 60_000, p.id),
            url: Some(p.url.clone()),
            tags: p.tags.clone(),
            terms: analyzer.post_terms(&p.title, &p.tags, &p.body),
        })
        .collect();
    let index = RelatedIndex::build(docs);
    // The defaults of [enrich]: 3 related posts, min_score 0.05.
    let params = Params {
        count: 3,
        min_score: 0.05,
        include_newer,
        fill_with_newer: false,
    };
    let topic = |id: i64| posts[(id - 1) as usize].topic;
    let (mut hits, mut listed, mut with_list) = (0usize, 0usize, 0usize);
    let (mut chance_sum, mut chance_n) = (0.0, 0usize);
    for (id, list) in index.related_all(params) {
        // Random baseline: the share of eligible candidates on the same topic.
        let eligible: Vec<&corpus::CorpusPost> = posts
            .iter()
            .filter(|p| p.id != id && (include_newer || p.id < id))
            .collect();
        if eligible.is_empty() {
            continue;
        }
        chance_sum +=
            eligible.iter().filter(|p| p.topic == topic(id)).count() as f64 / eligible.len() as f64;
        chance_n += 1;
        if !list.is_empty() {
            with_list += 1;
        }
        listed += list.len();
        hits += list
            .iter()
            .filter(|(other, _)| topic(*other) == topic(id))
            .count();
    }
    Quality {
        precision: hits as f64 / listed.max(1) as f64,
        baseline: chance_sum / chance_n.max(1) as f64,
        coverage: with_list as f64 / chance_n.max(1) as f64,
    }
}

#[test]
fn related_posts_share_a_topic_far_more_often_than_chance() {
    let posts = corpus::generate(600, 42);
    assert_eq!(corpus::TOPICS.len(), 12);
    for include_newer in [false, true] {
        let q = measure(&posts, include_newer);
        println!(
            "related quality (600 posts, 12 topics, include_newer={include_newer}): precision@3 {:.3}, random {:.3}, {:.1}x; {:.1}% of posts have a list",
            q.precision,
            q.baseline,
            q.precision / q.baseline,
            q.coverage * 100.0
        );
        assert!(
            q.precision >= 3.0 * q.baseline,
            "precision {:.3} vs random {:.3}",
            q.precision,
            q.baseline
        );
        assert!(
            q.coverage > 0.85,
            "only {:.1}% of posts have related posts",
            q.coverage * 100.0
        );
    }
}
