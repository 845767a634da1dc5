//! The public archive: `GET /archive` lists every issue that went out, newest first, a
//! page at a time, with nothing personal; `GET /archive.xml` is the same as an Atom feed.

use herald::clock::Clock;
use herald::config::Secrets;
use herald::domain::{SubscriberEmail, SubscriberStatus};
use herald::store::NewIssue;

use crate::support::{Site, source};

const SECRET: &str = "Ak5Lp0Qz7Wx2Mc8Vn3Bt6Rj1Hs9Gd4Fy";

fn config(feed: &str, smtp: &str) -> String {
    format!(
        "{}[smtp]\nurl = \"{smtp}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\n\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n",
        source("blog", feed)
    )
}

#[tokio::test]
async fn the_archive_lists_every_issue_newest_first_and_as_a_feed() {
    let secrets = Secrets {
        signing_secret: Some(SECRET.into()),
        ..Secrets::default()
    };
    let site = Site::start(config, secrets, None).await;
    let now = site.clock.now();
    site.herald
        .store
        .add_subscriber(
            &SubscriberEmail::parse("private.reader@example.net").unwrap(),
            Some("Private Reader"),
            &["weekly".into()],
            SubscriberStatus::Confirmed,
            now,
        )
        .await
        .unwrap();
    let posts = site
        .herald
        .store
        .list_posts(&herald::store::PostFilter {
            source: None,
            limit: Some(3),
        })
        .await
        .unwrap();
    // 25 weekly issues, and one empty period that must not be listed.
    for week in 0..26 {
        let due = now - chrono::Duration::weeks(26 - week);
        let skip = week == 10;
        site.herald
            .store
            .create_issue(
                &NewIssue {
                    digest: "weekly".into(),
                    due_at: due,
                    window_start: None,
                    window_end: due,
                    subject: format!("Harbour notes, week {week}"),
                    post_ids: if skip {
                        vec![]
                    } else {
                        posts.iter().map(|p| p.id).collect()
                    },
                    skip,
                },
                "localhost",
                now,
            )
            .await
            .unwrap();
    }
    let first = site.get_text(format!("{}archive", site.base)).await;
    assert!(!first.contains("private.reader") && !first.contains("Private Reader"));
    assert!(
        !first.contains("week 10<"),
        "an empty period is not an issue"
    );
    let week = |page: &str, n: usize| {
        page.find(&format!("Harbour notes, week {n}<"))
            .unwrap_or_else(|| panic!("week {n} missing"))
    };
    assert!(week(&first, 25) < week(&first, 24), "newest first");
    assert_eq!(first.matches("<li>").count(), 20);
    assert!(first.contains(&format!("{} posts", posts.len())), "{first}");
    // (Handlebars writes the = of the query as &#x3D;, which browsers read as =.)
    assert!(
        first.contains("http://localhost:8080/archive?page&#x3D;2"),
        "a link to older issues"
    );
    assert!(first.contains("http://localhost:8080/archive.xml"));
    let second = site.get_text(format!("{}archive?page=2", site.base)).await;
    assert_eq!(second.matches("<li>").count(), 5);
    assert!(week(&second, 0) > week(&second, 1));
    assert!(
        second.contains("http://localhost:8080/archive\""),
        "a link back to newer issues"
    );
    assert!(!second.contains("archive?page&#x3D;3"));
    // An odd page number is the first page; a page past the end is empty, not an error.
    for odd in ["page=abc", "page=-1", "page=0", "page=99999999999999999999"] {
        let page = site.get_text(format!("{}archive?{odd}", site.base)).await;
        assert_eq!(page.matches("<li>").count(), 20, "{odd}");
    }
    // Past the end: an empty page, not an error; past the highest page read: the first.
    let past = site.get(format!("{}archive?page=900", site.base)).await;
    assert_eq!(past.status(), 200);
    assert!(
        past.text()
            .await
            .unwrap()
            .contains("No issues on this page")
    );
    let far = site
        .get_text(format!("{}archive?page=9000", site.base))
        .await;
    assert_eq!(far.matches("<li>").count(), 20);

    // The feed: 20 entries, newest first, each linking to its page.
    let feed = site.get(format!("{}archive.xml", site.base)).await;
    assert_eq!(
        feed.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let parsed = feed_rs::parser::parse(feed.bytes().await.unwrap().as_ref()).unwrap();
    assert_eq!(parsed.entries.len(), 20);
    let titles: Vec<String> = parsed
        .entries
        .iter()
        .map(|e| e.title.as_ref().unwrap().content.clone())
        .collect();
    assert_eq!(titles[0], "Harbour notes, week 25");
    let link = &parsed.entries[0].links[0].href;
    assert!(link.starts_with("http://localhost:8080/archive/"), "{link}");
    let page = site.get_text(site.local(link)).await;
    // The issue's page leads back to the list and to the sign-up form.
    assert!(
        page.contains("<a href=\"http://localhost:8080/archive\">All issues</a>"),
        "{page}"
    );
    assert!(page.contains("Subscribe to Test Site</a>"));
    assert!(page.contains("Harbour notes, week 25") || page.contains("<html"));
    // The landing page links to the archive.
    let landing = site.get_text(&site.base).await;
    assert!(
        landing.contains("http://localhost:8080/archive\">Past issues</a>"),
        "{landing}"
    );
}
