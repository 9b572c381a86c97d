//! WebSub: after changed feed bytes are live, tell the hub which topics (self URLs) changed.
//! One `hub.mode=publish` request per changed file, retried with backoff on failure.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Pings `hub` for every topic, retrying each up to three times; gives up early on shutdown.
pub async fn ping_all(hub: String, topics: Vec<String>, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!(
            "herald/",
            env!("CARGO_PKG_VERSION"),
            " (WebSub publisher)"
        ))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("WebSub: cannot build an HTTP client: {e}");
            return;
        }
    };
    for topic in topics {
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=3 {
            let sent = client
                .post(&hub)
                .form(&[("hub.mode", "publish"), ("hub.url", topic.as_str())])
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::info!("WebSub: {hub} accepted {topic}");
                    break;
                }
                Ok(r) => tracing::warn!(
                    "WebSub: {hub} answered {} for {topic} (attempt {attempt}/3)",
                    r.status()
                ),
                Err(e) => tracing::warn!(
                    "WebSub: {hub} unreachable for {topic}: {e} (attempt {attempt}/3)"
                ),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay *= 5;
        }
    }
}
