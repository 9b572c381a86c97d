//! The public URLs herald builds from `base_url`, where more than one module needs them.

use url::Url;

/// The absolute URL the feed file `rel` (`rss.xml`, `tags/rust/atom.xml`) is served at.
pub fn feed_url(base: &Url, rel: &str) -> String {
    base.join(&format!("feeds/{rel}"))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| format!("{base}feeds/{rel}"))
}
