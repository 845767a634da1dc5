//! `digest preview`: the next issue of a digest rendered to files, as a subscriber named
//! "Preview Reader" would get it, and the welcome a new subscriber gets, without touching
//! the ledger or the outbox.

use std::path::{Path, PathBuf};

use super::Herald;
use super::digest::{DigestError, Of};
use crate::deliver::message::{Personal, build_message};
use crate::deliver::sender::unsubscribe_url;
use crate::domain::token::TokenPurpose;
use crate::domain::{SubscriberEmail, SubscriberId};
use crate::render::{self, PersonalFields};

/// What a preview wrote.
#[derive(Debug, Clone)]
pub struct Preview {
    pub subject: String,
    pub posts: usize,
    pub files: Vec<PathBuf>,
}

impl Herald {
    /// Renders the next issue of a digest to files, without touching the ledger: the
    /// HTML and text as a subscriber named "Preview Reader" would get them, and the whole
    /// message as `.eml`.
    #[tracing::instrument(skip(self, out_dir), fields(digest = %name))]
    pub async fn preview_digest(&self, name: &str, out_dir: &Path) -> Result<Preview, DigestError> {
        let digest = self.digest_config(name)?.clone();
        let templates = self.templates_for(&digest)?;
        let now = self.clock.now();
        let after = self.store.last_window_end(&digest.name).await?;
        let posts = self
            .store
            .posts_in_window(&digest.sources, after, now, digest.max_posts)
            .await?;
        let related = self.related_for(&posts).await?;
        let rendered = self
            .render(&templates, &digest, Of::Next(now), &posts, &related, 0)
            .await?;
        let keys = self.signing_keys().await?;
        let email = SubscriberEmail::parse("preview@example.org")
            .unwrap_or_else(|_| unreachable!("a valid address"));
        let id = SubscriberId(0);
        let token = keys
            .current()
            .sign(TokenPurpose::Unsubscribe, id, "preview0", email.as_str());
        let fields = PersonalFields {
            name: Some("Preview Reader".into()),
            email: email.as_str().to_owned(),
            unsubscribe_url: unsubscribe_url(&self.config.site.base_url, &token),
        };
        let ctx = self.message_context(&digest);
        let message_id = format!("<herald.preview.{}@{}>", digest.name, self.message_domain());
        let personal = Personal {
            to: &email,
            fields: &fields,
            token: &token,
            message_id: &message_id,
            delivery: None,
        };
        let message =
            build_message(&ctx, &rendered, &personal, now).map_err(|e| DigestError::Template {
                digest: digest.name.clone(),
                source: render::Error::Render {
                    what: "the preview message".into(),
                    message: e,
                },
            })?;
        let write = |path: PathBuf, bytes: &[u8]| -> Result<PathBuf, DigestError> {
            std::fs::write(&path, bytes).map_err(|source| DigestError::Preview {
                path: path.display().to_string(),
                source,
            })?;
            Ok(path)
        };
        std::fs::create_dir_all(out_dir).map_err(|source| DigestError::Preview {
            path: out_dir.display().to_string(),
            source,
        })?;
        let mut files = vec![
            write(
                out_dir.join(format!("{name}.html")),
                rendered.html_for(&fields).as_bytes(),
            )?,
            write(
                out_dir.join(format!("{name}.txt")),
                rendered.text_for(&fields).as_bytes(),
            )?,
            write(out_dir.join(format!("{name}.eml")), &message.bytes)?,
        ];
        // The welcome a new subscriber of this digest gets, when it sends one.
        if digest.welcome {
            let welcome = self
                .welcome_for(
                    Some("Preview Reader".into()),
                    &[&digest],
                    fields.unsubscribe_url.clone(),
                    now,
                )
                .await?;
            let mail = render::welcome_mail(&self.templates().base(), &self.config.site, &welcome)
                .map_err(|source| DigestError::Template {
                    digest: digest.name.clone(),
                    source,
                })?;
            files.push(write(
                out_dir.join(format!("{name}.welcome.html")),
                mail.html.as_bytes(),
            )?);
            files.push(write(
                out_dir.join(format!("{name}.welcome.txt")),
                mail.text.as_bytes(),
            )?);
        }
        Ok(Preview {
            subject: rendered.subject,
            posts: posts.len(),
            files,
        })
    }
}
