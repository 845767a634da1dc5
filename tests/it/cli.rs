//! The real `herald` binary: exit codes, output, and the example blog end to end.

use std::path::Path;

use crate::support::{FeedServer, TestEnv, fixture, fixtures, source};

/// Copies the example blog into the env so a file source can read it.
fn with_example_blog(env: &TestEnv) {
    let dir = env.dir.path().join("examples/blog");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog/feed.xml"),
        dir.join("feed.xml"),
    )
    .unwrap();
}

#[tokio::test]
async fn check_config_passes_on_the_default_config() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("check-config")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("HERALD_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("config/herald.toml: ok"), "{stdout}");
}

#[tokio::test]
async fn check_config_lists_every_problem_with_file_line_and_key() {
    let path = fixtures().join("config/broken.toml");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The fixture marks each expected problem with "# <- line N".
    let text = std::fs::read_to_string(&path).unwrap();
    let expected: Vec<usize> = text
        .lines()
        .filter_map(|l| l.split("# <- line ").nth(1))
        .map(|rest| rest.split(':').next().unwrap().parse().unwrap())
        .collect();
    let reported: Vec<usize> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{}:", path.display())))
        .map(|rest| rest.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(reported, expected, "{stderr}");
    for needle in [
        ":4: site.base_url: \"not a url\" is not a valid URL",
        ":18: sources[1].name: duplicate source name \"blog\" (first defined at line 14)",
        ":20: sources[1].pol_interval: unknown key `pol_interval` (did you mean `poll_interval`?)",
        ":22: sources[2].name: missing required key `name`",
        ":27: digests[0].schedule: \"every monday\" is not a cron schedule",
        ":28: digests[0].timezone: \"Europe/Atlantis\" is not a known IANA time zone",
        ":29: digests[0].sources[1]: no source named \"nope\"",
        ":33: smtp.password: the SMTP password is a secret: set HERALD_SMTP_PASSWORD",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in\n{stderr}");
    }
    assert!(!stderr.contains("hunter2"), "a secret was echoed");
    assert!(stderr.contains(&format!(
        "{}: {} problems in the config",
        path.display(),
        expected.len()
    )));
}

#[tokio::test]
async fn errors_on_invalid_toml_with_its_line() {
    let env = TestEnv::new("[[sources]\nname = \"x\"\n");
    let (code, _, stderr) = env.run(&["check-config"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("herald.toml:11: invalid TOML"), "{stderr}");
}

#[tokio::test]
async fn errors_on_usage_with_exit_code_1() {
    let env = TestEnv::new("");
    let (code, _, stderr) = env.run(&["poll", "--no-such-flag"]).await;
    assert_eq!(code, 1, "{stderr}");
    let (code, _, stderr) = env.run(&["posts", "show", "not-a-number"]).await;
    assert_eq!(code, 1, "{stderr}");
}

#[tokio::test]
async fn polls_the_example_blog_twice_without_duplicates() {
    let env = TestEnv::new(&source("field-notes", "examples/blog/feed.xml"));
    with_example_blog(&env);
    let (code, stdout, stderr) = env.run(&["poll"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("field-notes: 14 new, 0 updated, 0 unchanged (14 entries)"),
        "{stdout}"
    );
    assert!(
        env.dir.path().join("data/herald.db").exists(),
        "a real SQLite file"
    );

    let (code, stdout, _) = env.run(&["poll"]).await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("polled 1 source: 0 new posts, 0 failed"),
        "{stdout}"
    );

    // Touching the file forces a re-read; every post is then recognised as unchanged.
    let feed = env.dir.path().join("examples/blog/feed.xml");
    let text = std::fs::read_to_string(&feed).unwrap();
    std::fs::write(&feed, format!("{text}\n")).unwrap();
    let (_, stdout, _) = env.run(&["poll"]).await;
    assert!(
        stdout.contains("field-notes: 0 new, 0 updated, 14 unchanged (14 entries)"),
        "{stdout}"
    );

    let (code, stdout, _) = env.run(&["posts", "list", "--json"]).await;
    assert_eq!(code, 0);
    let posts: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(posts.len(), 14);
    let mut ids: Vec<&str> = posts
        .iter()
        .map(|p| p["stable_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 14, "stable ids are unique");
    for post in &posts {
        assert!(
            post["url"]
                .as_str()
                .unwrap()
                .starts_with("https://blog.example.org/posts/")
        );
        let html = post["html"].as_str().unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(!has_event_handler(html), "{html}");
        for src in html.split("src=\"").skip(1) {
            assert!(src.starts_with("https://"), "relative image left in {html}");
        }
    }
}

#[tokio::test]
async fn posts_list_and_show_print_what_is_stored() {
    let env = TestEnv::new(&source("field-notes", "examples/blog/feed.xml"));
    with_example_blog(&env);
    env.run(&["poll"]).await;
    let (code, stdout, _) = env.run(&["posts", "list", "--limit", "3"]).await;
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    // newest first, by published date (the undated post is dated by when herald saw it)
    assert!(
        stdout
            .lines()
            .nth(1)
            .unwrap()
            .contains("Keeping a sourdough starter alive"),
        "{stdout}"
    );

    let (code, stdout, _) = env.run(&["posts", "show", "2"]).await;
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("Bread, Butter & the Art of Waiting\u{2026}\n"),
        "{stdout}"
    );
    assert!(stdout.contains("tags:       Baking, Sourdough"));

    let (code, _, stderr) = env.run(&["posts", "show", "999"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no post with id 999"), "{stderr}");
    let (code, _, stderr) = env.run(&["posts", "list", "--source", "nope"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no source named \"nope\""), "{stderr}");
}

#[tokio::test]
async fn a_broken_source_exits_2_naming_it_while_the_others_are_stored() {
    let server = FeedServer::start(fixture("atom.xml")).await;
    let env = TestEnv::new(&format!(
        "{}{}{}",
        source("good", &server.url("/feed.xml")),
        source("missing", &server.url("/status/404")),
        source("local", "no/such/file.xml"),
    ));
    let (code, stdout, stderr) = env.run(&["poll"]).await;
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.contains("good: 2 new"), "{stdout}");
    assert!(
        stdout.contains("missing: FAILED: source \"missing\":"),
        "{stdout}"
    );
    assert!(stdout.contains("HTTP 404"), "{stdout}");
    assert!(
        stdout.contains("local: FAILED: source \"local\": cannot read no/such/file.xml"),
        "{stdout}"
    );
    assert!(
        stderr.contains("source \"missing\""),
        "the failure is logged: {stderr}"
    );

    let (_, stdout, _) = env.run(&["posts", "list", "--json"]).await;
    let posts: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(posts.len(), 2);

    // the next poll answers 304 for the good source
    let (code, stdout, _) = env.run(&["poll", "--source", "good"]).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("good: not modified"), "{stdout}");
}

#[tokio::test]
async fn poll_of_an_unknown_source_is_a_usage_error() {
    let env = TestEnv::new(&source("field-notes", "examples/blog/feed.xml"));
    let (code, _, stderr) = env.run(&["poll", "--source", "nope"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no source named \"nope\" (sources: field-notes)"),
        "{stderr}"
    );
}

/// Whether any tag carries an `on...=` attribute.
fn has_event_handler(html: &str) -> bool {
    html.split('<').skip(1).any(|tag| {
        let tag = tag.split('>').next().unwrap_or("");
        tag.split_whitespace()
            .skip(1)
            .any(|attr| attr.to_ascii_lowercase().starts_with("on") && attr.contains('='))
    })
}

#[tokio::test]
async fn run_does_one_full_pass_on_the_default_config() {
    let env = TestEnv::new("");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("config/herald.toml"), env.config_path()).unwrap();
    with_example_blog(&env);
    let (code, stdout, stderr) = env.run(&["run"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("field-notes: 14 new"), "{stdout}");
    assert!(
        stdout.contains("enriched: 14 summaries, 14 related lists"),
        "{stdout}"
    );
    assert!(stdout.contains("feeds: public/feed.xml (written), public/atom.xml (written), public/feed.json (written)"), "{stdout}");
    assert!(
        stdout.contains("digests: none due"),
        "a fresh install sends no stale period: {stdout}"
    );
    for file in ["feed.xml", "atom.xml", "feed.json"] {
        assert!(env.dir.path().join("public").join(file).exists());
    }
    // Every post of the example blog has a summary without clutter and a related list,
    // the oldest ones too (fill_with_newer).
    let feed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.dir.path().join("public/feed.json")).unwrap(),
    )
    .unwrap();
    let items = feed["items"].as_array().unwrap();
    assert_eq!(items.len(), 14);
    for item in items {
        let title = item["title"].as_str().unwrap();
        let summary = item["summary"].as_str().unwrap();
        for clutter in [
            "appeared first on",
            "[\u{2026}]",
            "Read more",
            "Continue reading",
            "<",
        ] {
            assert!(!summary.contains(clutter), "{title}: {summary}");
        }
        let related = item["_herald"]["related"].as_array();
        assert!(
            related.is_some_and(|r| !r.is_empty()),
            "{title} has no related list"
        );
    }
    let (code, stdout, _) = env.run(&["run"]).await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("field-notes: not modified") && stdout.contains("(unchanged)"),
        "{stdout}"
    );
}

/// Runs the binary on a pseudo-terminal (util-linux `script`), as a person at a terminal
/// would; returns everything the terminal showed.
async fn on_a_terminal(env: &TestEnv, args: &str) -> String {
    let command = format!(
        "{} --config {} {args}",
        env!("CARGO_BIN_EXE_herald"),
        env.config_path().display()
    );
    let output = tokio::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(env.dir.path())
        .env("HERALD_LOG", "warn")
        .output()
        .await
        .expect("util-linux script runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn long_commands_show_progress_on_a_terminal_and_quiet_silences_it() {
    let env = TestEnv::new("[[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\n");
    let rows: String = (0..30_000)
        .map(|i| format!("r{i}@example.org,Reader {i},\n"))
        .collect();
    std::fs::write(env.dir.path().join("list.csv"), rows).unwrap();
    let shown = on_a_terminal(&env, "subscribers import list.csv").await;
    assert!(
        shown.contains("importing [########################] 30000/30000"),
        "{shown}"
    );
    assert!(shown.contains('\r'), "redrawn in place");
    assert!(shown.contains("30000 added"), "{shown}");
    std::fs::write(env.dir.path().join("more.csv"), "x@example.org,,\n").unwrap();
    let quiet = on_a_terminal(&env, "--quiet subscribers import more.csv").await;
    assert!(!quiet.contains("importing ["), "{quiet}");
    assert!(quiet.contains("1 added"), "{quiet}");
}

#[tokio::test]
async fn status_shows_sources_digests_subscribers_and_the_store_on_one_screen() {
    let feed = FeedServer::start(fixture("rss20-media.xml")).await;
    let env = TestEnv::new(&format!(
        "{}{}[[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n",
        source("blog", &feed.url("/feed.xml")),
        source("gone", &feed.url("/status/404")),
    ));
    let (code, _, _) = env.run(&["poll"]).await;
    assert_eq!(code, 2);
    env.run(&["subscribers", "add", "a@example.org", "--confirmed"])
        .await;
    env.run(&["subscribers", "add", "b@example.org"]).await;
    let (code, text, stderr) = env.run(&["status"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("blog") && text.contains("ok; last poll"),
        "{text}"
    );
    assert!(
        text.contains("gone") && text.contains("FAILING (1 in a row)") && text.contains("404"),
        "{text}"
    );
    assert!(
        text.contains("\"0 8 * * Mon\" in Europe/Berlin; next 20"),
        "{text}"
    );
    assert!(
        text.contains("1 confirmed recipient") && text.contains("no issue yet"),
        "{text}"
    );
    assert!(
        text.contains("Subscribers: 1 confirmed, 1 pending"),
        "{text}"
    );
    assert!(text.contains("Store:") && text.contains("MB"), "{text}");
    let (_, json, _) = env.run(&["status", "--json"]).await;
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["sources"].as_array().unwrap().len(), 2);
    assert_eq!(value["sources"][1]["consecutive_failures"], 1);
    assert!(
        value["digests"][0]["next"]
            .as_str()
            .unwrap()
            .ends_with("+01:00"),
        "08:00 Berlin in winter"
    );
    assert!(value["store_bytes"].as_u64().unwrap() > 0);
}
