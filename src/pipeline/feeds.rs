//! Writing the outgoing feeds to disk, and telling a WebSub hub when they change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tracing::{info, warn};

use super::Herald;
use crate::render::feed::{FeedInput, render_feeds};

/// What `write_feeds` did to each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedFile {
    pub path: PathBuf,
    /// Written because its content changed (or it did not exist).
    pub changed: bool,
}

/// Why the feeds could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Render(#[from] crate::render::feed::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("writing the feeds crashed: {0}")]
    Crashed(String),
}

impl Herald {
    /// Renders RSS, Atom and JSON Feed and writes those that changed (atomically: temp
    /// file, then rename). Unchanged files are not touched, so their mtime and any ETag
    /// derived from them stay put. A configured WebSub hub is pinged for each changed
    /// feed; a failed ping is logged, never fatal.
    #[tracing::instrument(skip_all)]
    pub async fn write_feeds(&self, out_dir: Option<&Path>) -> Result<Vec<FeedFile>, FeedError> {
        let feed = &self.config.feed;
        let dir = out_dir.unwrap_or(&feed.out_dir);
        // Every post ever seen, newest first; "until" is far away so the clock plays no part.
        let until = Utc
            .with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
            .single()
            .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
        let posts = self
            .store
            .posts_in_window(&feed.sources, None, until, feed.max_items)
            .await?;
        let related = self.related_for(&posts).await?;
        let items = posts.len();
        // Rendering and file I/O are blocking work: off the async threads.
        let config = Arc::clone(&self.config);
        let dir = dir.to_path_buf();
        let written = tokio::task::spawn_blocking(move || -> Result<Vec<FeedFile>, FeedError> {
            let feed = &config.feed;
            let feeds = render_feeds(&FeedInput {
                site: &config.site,
                feed,
                posts: &posts,
                related: &related,
            })?;
            std::fs::create_dir_all(&dir).map_err(|source| FeedError::Write {
                path: dir.display().to_string(),
                source,
            })?;
            let mut files = Vec::new();
            for (name, bytes) in [
                ("feed.xml", &feeds.rss),
                ("atom.xml", &feeds.atom),
                ("feed.json", &feeds.json),
            ] {
                let path = dir.join(name);
                let changed = write_if_changed(&path, bytes)?;
                files.push(FeedFile { path, changed });
            }
            Ok(files)
        })
        .await
        .map_err(|e| FeedError::Crashed(e.to_string()))??;
        for (file, public) in written
            .iter()
            .zip([&feed.rss_url, &feed.atom_url, &feed.json_url])
        {
            if file.changed {
                info!(path = %file.path.display(), items, "feed written");
                if let Some(hub) = &feed.hub {
                    self.ping_hub(hub, public).await;
                }
            }
        }
        Ok(written)
    }

    /// WebSub publish notification (a W3C WebSub "publish" ping, as hubs such as
    /// pubsubhubbub.appspot.com accept).
    async fn ping_hub(&self, hub: &url::Url, feed_url: &url::Url) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("hub.mode", "publish")
            .append_pair("hub.url", feed_url.as_str())
            .finish();
        let result = self
            .fetcher
            .client()
            .post(hub.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .timeout(std::time::Duration::from_secs(10))
            .body(body)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => info!(hub = %hub, feed = %feed_url, "hub notified"),
            Ok(r) => {
                warn!(hub = %hub, feed = %feed_url, status = r.status().as_u16(), "the hub refused the publish ping")
            }
            Err(e) => warn!(hub = %hub, feed = %feed_url, error = %e, "could not reach the hub"),
        }
    }
}

/// Writes `bytes` to `path` unless the file already holds exactly them.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, FeedError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    let fail = |source| FeedError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(true)
}
