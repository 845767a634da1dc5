//! Rendering: turns stored posts and an issue into the digest email's subject, HTML and
//! text. Never sends and never reads the clock.
//!
//! Templates are Handlebars. The built-in ones (the files under `templates/` in the
//! repository) are embedded in the binary; a file of the same name in the configured
//! templates folder replaces the built-in one. Templates are strict: a misspelt variable
//! is an error naming the template and line, found when herald starts (`check-config`
//! renders every template against a sample issue). `{{list.length}}` works as in
//! Handlebars.js.
//!
//! | template | file | escaping |
//! | --- | --- | --- |
//! | `<name>.html` | `<name>.html.hbs` | HTML |
//! | `<name>.txt` | `<name>.txt.hbs` | none (plain text, wrapped at 78 columns) |
//! | partials `post_html`, `post_txt`, `footer_html`, `footer_txt` | `partials/<name>.<ext>.hbs` | as above |
//! | `confirm.txt`, `confirm.html` (the confirmation mail) | `confirm.<ext>.hbs` | as above |
//! | pages `page_index`, `page_archive`, `page_message`, `page_confirm`, `page_unsubscribe` | `pages/<name>.html.hbs` | HTML |

pub mod email;
pub mod feed;
mod text;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use handlebars::Handlebars;

use crate::domain::{PostId, RelatedPost};

pub use email::{PersonalFields, Personalized, RenderedIssue};

/// Built-in templates: (registry name, file under the templates folder, source).
const BUILT_IN: &[(&str, &str, &str)] = &[
    (
        "digest.html",
        "digest.html.hbs",
        include_str!("../../templates/digest.html.hbs"),
    ),
    (
        "digest.txt",
        "digest.txt.hbs",
        include_str!("../../templates/digest.txt.hbs"),
    ),
    (
        "post_html",
        "partials/post.html.hbs",
        include_str!("../../templates/partials/post.html.hbs"),
    ),
    (
        "post_txt",
        "partials/post.txt.hbs",
        include_str!("../../templates/partials/post.txt.hbs"),
    ),
    (
        "footer_html",
        "partials/footer.html.hbs",
        include_str!("../../templates/partials/footer.html.hbs"),
    ),
    (
        "footer_txt",
        "partials/footer.txt.hbs",
        include_str!("../../templates/partials/footer.txt.hbs"),
    ),
    (
        "confirm.txt",
        "confirm.txt.hbs",
        include_str!("../../templates/confirm.txt.hbs"),
    ),
    (
        "confirm.html",
        "confirm.html.hbs",
        include_str!("../../templates/confirm.html.hbs"),
    ),
    (
        "welcome.txt",
        "welcome.txt.hbs",
        include_str!("../../templates/welcome.txt.hbs"),
    ),
    (
        "welcome.html",
        "welcome.html.hbs",
        include_str!("../../templates/welcome.html.hbs"),
    ),
    (
        "page_index",
        "pages/index.html.hbs",
        include_str!("../../templates/pages/index.html.hbs"),
    ),
    (
        "page_archive",
        "pages/archive.html.hbs",
        include_str!("../../templates/pages/archive.html.hbs"),
    ),
    (
        "page_message",
        "pages/message.html.hbs",
        include_str!("../../templates/pages/message.html.hbs"),
    ),
    (
        "page_confirm",
        "pages/confirm.html.hbs",
        include_str!("../../templates/pages/confirm.html.hbs"),
    ),
    (
        "page_unsubscribe",
        "pages/unsubscribe.html.hbs",
        include_str!("../../templates/pages/unsubscribe.html.hbs"),
    ),
];

/// A template problem, naming the template (and, from Handlebars, the line).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("template {file}: {message}")]
    Template { file: String, message: String },
    #[error("cannot read template {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rendering {what}: {message}")]
    Render { what: String, message: String },
    #[error("inlining the CSS of {what}: {message}")]
    Css { what: String, message: String },
}

/// The compiled templates: one registry that escapes HTML, one that does not.
pub struct Templates {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    /// Loads the built-in templates, each replaced by a file of the same name in `dir`
    /// when there is one, plus `<name>.html.hbs` / `<name>.txt.hbs` for every extra
    /// digest template name in `digest_templates`.
    pub fn load(dir: &Path, digest_templates: &[&str]) -> Result<Self, Error> {
        let mut html = Handlebars::new();
        let mut text = Handlebars::new();
        html.set_strict_mode(true);
        text.set_strict_mode(true);
        text.register_escape_fn(handlebars::no_escape);

        let mut sources: Vec<(String, String, String)> = Vec::new();
        for (name, file, built_in) in BUILT_IN {
            let path = dir.join(file);
            let source = match std::fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (*built_in).to_owned(),
                Err(source) => return Err(Error::Read { path, source }),
            };
            sources.push(((*name).to_owned(), path.display().to_string(), source));
        }
        for name in digest_templates {
            if *name == "digest" {
                continue;
            }
            for ext in ["html", "txt"] {
                let path = dir.join(format!("{name}.{ext}.hbs"));
                let source = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                sources.push((format!("{name}.{ext}"), path.display().to_string(), source));
            }
        }
        for (name, file, source) in sources {
            let source = text::length_to_len(&source);
            let is_text = name.ends_with(".txt") || name.ends_with("_txt");
            let registry = if is_text { &mut text } else { &mut html };
            registry
                .register_template_string(&name, source)
                .map_err(|e| Error::Template {
                    file: file.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(Self { html, text })
    }

    /// Renders a plain-text template string (a subject line) against `data`.
    pub fn render_inline_text(
        &self,
        what: &str,
        template: &str,
        data: &serde_json::Value,
    ) -> Result<String, Error> {
        self.text
            .render_template(&text::length_to_len(template), data)
            .map_err(|e| Error::Render {
                what: what.to_owned(),
                message: e.to_string(),
            })
    }

    /// Renders one of the HTML templates (a page) against `data`.
    pub fn render_page(&self, name: &str, data: &serde_json::Value) -> Result<String, Error> {
        self.render_html(name, data)
    }

    fn render_html(&self, name: &str, data: &serde_json::Value) -> Result<String, Error> {
        self.html.render(name, data).map_err(|e| Error::Render {
            what: format!("template {name}"),
            message: e.to_string(),
        })
    }

    fn render_text(&self, name: &str, data: &serde_json::Value) -> Result<String, Error> {
        self.text.render(name, data).map_err(|e| Error::Render {
            what: format!("template {name}"),
            message: e.to_string(),
        })
    }
}

/// A transactional mail's parts (a confirmation, a welcome).
#[derive(Debug, Clone)]
pub struct TransactionalMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The mail that carries a confirm link: `request` says what it would change
/// ([`describe_sign_up`]), `days` how long the link works.
pub fn confirmation_mail(
    templates: &Templates,
    site: &crate::config::SiteConfig,
    url: &str,
    request: &str,
    days: i64,
) -> Result<TransactionalMail, Error> {
    let data = serde_json::json!({
        "site": { "title": site.title, "url": site.base_url.as_str(), "language": site.language },
        "url": url,
        "request": request,
        "days": days,
        "one_day": days == 1,
    });
    Ok(TransactionalMail {
        subject: format!("Confirm your subscription to {}", site.title),
        text: templates.render_text("confirm.txt", &data)?,
        html: templates.render_html("confirm.html", &data)?,
    })
}

/// What a welcome mail says: the digests the subscriber gets and when the next of each
/// comes, and some posts to start with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Welcome {
    pub name: Option<String>,
    /// (digest name, the next issue's date as the reader's digest zone shows it).
    pub digests: Vec<WelcomeDigest>,
    pub posts: Vec<WelcomePost>,
    /// Whether the posts are the latest issue's (else the latest stored).
    pub from_issue: bool,
    pub unsubscribe_url: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WelcomeDigest {
    pub name: String,
    pub next: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WelcomePost {
    pub title: String,
    pub url: Option<String>,
    pub summary: Option<String>,
}

/// The welcome mail, sent once after a confirmed sign-up.
pub fn welcome_mail(
    templates: &Templates,
    site: &crate::config::SiteConfig,
    welcome: &Welcome,
) -> Result<TransactionalMail, Error> {
    let data = serde_json::json!({
        "site": { "title": site.title, "url": site.base_url.as_str(), "language": site.language },
        "name": welcome.name,
        "digests": welcome.digests,
        "posts": welcome.posts,
        "from_issue": welcome.from_issue,
        "unsubscribe_url": welcome.unsubscribe_url,
    });
    Ok(TransactionalMail {
        subject: format!("Welcome to {}", site.title),
        text: templates.render_text("welcome.txt", &data)?,
        html: templates.render_html("welcome.html", &data)?,
    })
}

/// The templates of a site, compiled once: the built-ins (with overrides) for pages and
/// mail, and each digest's own. A digest whose templates do not load fails alone, with
/// the reason; the others go on. Replaced whole when the operator asks for a reload.
#[derive(Debug)]
pub struct TemplateSet {
    base: std::sync::Arc<Templates>,
    digests: HashMap<String, Result<std::sync::Arc<Templates>, String>>,
}

impl TemplateSet {
    /// Loads the templates for `digests` (name, template base name).
    pub fn load(dir: &Path, digests: &[(&str, &str)]) -> Result<Self, Error> {
        let base = std::sync::Arc::new(Templates::load(dir, &[])?);
        let digests = digests
            .iter()
            .map(|(name, template)| {
                let loaded = if *template == "digest" {
                    Ok(std::sync::Arc::clone(&base))
                } else {
                    Templates::load(dir, &[template])
                        .map(std::sync::Arc::new)
                        .map_err(|e| e.to_string())
                };
                ((*name).to_owned(), loaded)
            })
            .collect();
        Ok(Self { base, digests })
    }

    /// The pages and transactional mail.
    pub fn base(&self) -> std::sync::Arc<Templates> {
        std::sync::Arc::clone(&self.base)
    }

    /// A digest's templates, or why they did not load.
    pub fn digest(&self, name: &str) -> Result<std::sync::Arc<Templates>, Error> {
        match self.digests.get(name) {
            Some(Ok(t)) => Ok(std::sync::Arc::clone(t)),
            Some(Err(message)) => Err(Error::Render {
                what: format!("the templates of digest \"{name}\""),
                message: message.clone(),
            }),
            None => Ok(self.base()),
        }
    }
}

/// The related posts of `post` that can be linked from an email or a feed (those with an
/// http(s) URL), best first, as (title, url).
fn related_links(
    related: &HashMap<PostId, Vec<RelatedPost>>,
    post: PostId,
) -> impl Iterator<Item = (&str, &str)> {
    related.get(&post).into_iter().flatten().filter_map(|r| {
        r.url
            .as_deref()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(|url| (r.title.as_str(), url))
    })
}

/// "the weekly and daily digests, under the name Ana": what a confirmation asks for.
pub fn describe_sign_up(name: Option<&str>, digests: &[String]) -> String {
    let mut s = match digests {
        [] => "the digest".to_owned(),
        [one] => format!("the {one} digest"),
        [first @ .., last] => format!("the {} and {last} digests", first.join(", ")),
    };
    if let Some(name) = name {
        s.push_str(&format!(", under the name \"{name}\""));
    }
    s
}
