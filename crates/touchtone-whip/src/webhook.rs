//! Webhooks: each event is `POST`ed as JSON to a URL, signed with HMAC-SHA256, retried with
//! exponential backoff.
//!
//! Headers of every request:
//!
//! - `Content-Type: application/json`; the body is the event's record ([`SinkEvent::json`]);
//! - `X-Touchtone-Timestamp`: Unix time in seconds when the attempt was made;
//! - `X-Touchtone-Signature: sha256=<hex>`: HMAC-SHA256 with the secret over `<timestamp>.<body>`
//!   (the timestamp's decimal digits, a dot, the body's bytes), when a secret is set;
//! - `X-Touchtone-Attempt`: 1 for the first try, then 2, 3, ...
//!
//! A `2xx` answer delivers the event. Connection errors, timeouts, `408`, `429` and `5xx` are retried
//! after 0.25 s, 0.5 s, 1 s, ... (capped, with up to 25% jitter) until the attempts run out; other
//! answers fail the event at once. Delivery is at least once: a receiver drops repeats by
//! `(call, seq)`.
//!
//! Plain `http://` only: TLS is left to a proxy or sidecar next to the server (see the README).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{Request, Uri, header};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use thiserror::Error;

use crate::sink::{DeliverFuture, EventSink, SinkError, SinkEvent};

/// Settings of one webhook destination.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Where events are posted (`http://host:port/path`).
    pub url: String,
    /// The HMAC-SHA256 key; `None` sends no signature.
    pub secret: Option<String>,
    /// Tries per event, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each next one.
    pub first_backoff: Duration,
    /// Longest wait between tries.
    pub max_backoff: Duration,
    /// Time for one try (connect, send, answer).
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .field("max_attempts", &self.max_attempts)
            .field("first_backoff", &self.first_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WebhookConfig {
    /// A destination with the default policy: 6 tries, 0.25 s doubling up to 10 s, 5 s per try.
    pub fn new(url: impl Into<String>, secret: Option<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret,
            max_attempts: 6,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why a webhook URL was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// Not a URL.
    #[error("{0:?} is not a URL")]
    InvalidUrl(String),
    /// Not `http://` (TLS is left to a proxy next to the server).
    #[error("{0:?}: only http:// webhooks are supported (put a TLS proxy next to the server)")]
    UnsupportedScheme(String),
}

/// A webhook destination, an [`EventSink`].
pub struct Webhook {
    config: WebhookConfig,
    uri: Uri,
    name: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Answers no larger than this are read (and ignored); the rest is cut.
const MAX_ANSWER: usize = 64 * 1024;

impl Webhook {
    /// A destination; checks the URL. Needs a Tokio runtime to deliver.
    pub fn new(config: WebhookConfig) -> Result<Webhook, WebhookError> {
        let uri: Uri = config
            .url
            .parse()
            .map_err(|_| WebhookError::InvalidUrl(config.url.clone()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(WebhookError::UnsupportedScheme(config.url.clone())),
            None => return Err(WebhookError::InvalidUrl(config.url.clone())),
        }
        let host = uri
            .host()
            .ok_or_else(|| WebhookError::InvalidUrl(config.url.clone()))?;
        let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
        let name = format!("webhook http://{host}{port}{}", uri.path());
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Webhook {
            config,
            uri,
            name,
            client,
        })
    }

    /// One try: `Ok` on 2xx; `Err((error, worth retrying))` otherwise.
    async fn attempt(&self, body: &Bytes, attempt: u32) -> Result<(), (SinkError, bool)> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let mut req = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("touchtone/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-touchtone-timestamp", &now)
            .header("x-touchtone-attempt", attempt);
        if let Some(secret) = &self.config.secret {
            req = req.header("x-touchtone-signature", sign(secret, &now, body));
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| (SinkError::Transport(e.to_string()), false))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| (SinkError::Transport(e.to_string()), true))?;
            let status = resp.status();
            // Read the answer so the connection can be reused.
            let _ = Limited::new(resp.into_body(), MAX_ANSWER).collect().await;
            if status.is_success() {
                Ok(())
            } else {
                let retry = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
                Err((SinkError::Status(status.as_u16()), retry))
            }
        };
        tokio::time::timeout(self.config.timeout, exchange)
            .await
            .unwrap_or(Err((SinkError::Timeout, true)))
    }

    /// The wait after failed try `n` (1-based): doubling from `first_backoff`, capped, plus jitter.
    fn backoff(&self, n: u32) -> Duration {
        let base = self
            .config
            .first_backoff
            .saturating_mul(1u32 << (n - 1).min(20))
            .min(self.config.max_backoff);
        let mut r = [0u8; 2];
        let _ = getrandom::fill(&mut r);
        base + base.mul_f64(f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX) / 4.0)
    }
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `timestamp.body`).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl EventSink for Webhook {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn deliver<'a>(&'a self, event: &'a SinkEvent) -> DeliverFuture<'a> {
        Box::pin(async move {
            let body = Bytes::copy_from_slice(event.json.as_bytes());
            let attempts = self.config.max_attempts.max(1);
            let mut n = 1;
            loop {
                match self.attempt(&body, n).await {
                    Ok(()) => return Ok(()),
                    Err((e, retry)) if retry && n < attempts => {
                        tracing::debug!("{}: try {n} failed ({e}), retrying", self.name);
                        tokio::time::sleep(self.backoff(n)).await;
                        n += 1;
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Python: hmac.new(b'Jefe', b'1700000000.{"type":"digit"}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign("Jefe", "1700000000", br#"{"type":"digit"}"#),
            "sha256=a8ef1cbe7d8250cbf3d0455c1a14bac49abca6d34d33041e2b7e6aa7a9d8c82f"
        );
    }

    #[test]
    fn only_plain_http_urls_are_taken_and_names_hide_the_query() {
        let w = Webhook::new(WebhookConfig::new(
            "http://u:p@h.example:81/hook?key=s",
            None,
        ));
        assert_eq!(w.unwrap().name(), "webhook http://h.example:81/hook");
        assert!(matches!(
            Webhook::new(WebhookConfig::new("https://h.example/", None)),
            Err(WebhookError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            Webhook::new(WebhookConfig::new("not a url", None)),
            Err(WebhookError::InvalidUrl(_))
        ));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut c = WebhookConfig::new("http://h/", None);
        c.first_backoff = Duration::from_millis(100);
        c.max_backoff = Duration::from_millis(350);
        let w = Webhook::new(c).unwrap();
        let within = |d: Duration, lo: u64| {
            d >= Duration::from_millis(lo) && d <= Duration::from_millis(lo + lo / 4 + 1)
        };
        assert!(within(w.backoff(1), 100));
        assert!(within(w.backoff(2), 200));
        assert!(within(w.backoff(3), 350));
        assert!(within(w.backoff(30), 350));
    }
}
