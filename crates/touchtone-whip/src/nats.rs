//! NATS: every event of every call is published on `touchtone.calls.<id>.<type>` (the record of
//! [`SinkEvent::json`]), and calls take commands by request/reply, so a backend can act on any call
//! of any server sharing the bus:
//!
//! | subject | request | reply |
//! |---|---|---|
//! | `touchtone.calls.<id>.dtmf` | `{"tones":"123","duration":100,"gap":70}` (`duration` and `gap` optional) | `{"ok":true,...}` or `{"error":"InvalidCharacterError"\|"InvalidStateError"\|"NotFound"\|"InvalidJson","message":...}` |
//! | `touchtone.calls.<id>.hangup` | anything | `{"ok":true,...}` |
//!
//! Replies carry `instance` and `call`. Every server listens on the wildcard subjects and only the
//! one that owns the call answers: a request for a call no server has gets no reply (the requester's
//! timeout).

use std::sync::Arc;

use async_nats::{Client, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::http::DtmfRequest;
use crate::hub::Hub;
use crate::sink::{DeliverFuture, EventSink, SinkError, SinkEvent, SinkOptions};

/// The subjects' first two tokens.
pub const SUBJECT_PREFIX: &str = "touchtone.calls";

/// Why NATS could not be set up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The URL tried.
        url: String,
        /// What failed.
        message: String,
    },
    /// The command subjects could not be subscribed.
    #[error("cannot subscribe to the command subjects: {0}")]
    Subscribe(String),
}

/// Publishes events on `touchtone.calls.<id>.<type>`, an [`EventSink`].
#[derive(Debug, Clone)]
pub struct NatsSink {
    client: Client,
}

impl NatsSink {
    /// A sink publishing with `client`.
    pub fn new(client: Client) -> NatsSink {
        NatsSink { client }
    }
}

impl EventSink for NatsSink {
    fn name(&self) -> String {
        "nats".to_string()
    }

    fn deliver<'a>(&'a self, event: &'a SinkEvent) -> DeliverFuture<'a> {
        Box::pin(async move {
            let subject = format!("{SUBJECT_PREFIX}.{}.{}", event.call, event.kind);
            let payload = Bytes::copy_from_slice(event.json.as_bytes());
            self.client
                .publish(subject, payload)
                .await
                .map_err(|e| SinkError::Transport(e.to_string()))
        })
    }
}

/// NATS attached to a hub: the event sink and the command listener. Dropping it stops the commands
/// (events keep flowing to the bus while the hub lives).
#[derive(Debug)]
#[must_use = "commands stop when this is dropped"]
pub struct NatsBridge {
    commands: JoinHandle<()>,
}

impl Drop for NatsBridge {
    fn drop(&mut self) {
        self.commands.abort();
    }
}

/// Connects to a NATS server (`nats://host:4222`; several comma-separated for a cluster).
pub async fn connect(url: &str) -> Result<Client, NatsError> {
    async_nats::ConnectOptions::new()
        .name("touchtone")
        .connect(url)
        .await
        .map_err(|e| NatsError::Connect {
            url: url.to_string(),
            message: e.to_string(),
        })
}

impl NatsBridge {
    /// Publishes `hub`'s events with `client` and answers commands for its calls.
    pub async fn attach(
        hub: &Hub,
        client: Client,
        options: SinkOptions,
    ) -> Result<NatsBridge, NatsError> {
        let sub = |cmd: &'static str| {
            let client = client.clone();
            async move {
                client
                    .subscribe(format!("{SUBJECT_PREFIX}.*.{cmd}"))
                    .await
                    .map_err(|e| NatsError::Subscribe(e.to_string()))
            }
        };
        let dtmf = sub("dtmf").await?;
        let hangup = sub("hangup").await?;
        // Subscriptions are registered with the server before commands may be expected.
        client
            .flush()
            .await
            .map_err(|e| NatsError::Subscribe(e.to_string()))?;
        hub.add_sink(Arc::new(NatsSink::new(client.clone())), options);
        let hub = hub.clone();
        let commands = tokio::spawn(async move {
            let mut both = futures_util::stream::select(dtmf, hangup);
            while let Some(msg) = both.next().await {
                tokio::spawn(command(hub.clone(), client.clone(), msg));
            }
        });
        Ok(NatsBridge { commands })
    }
}

/// Handles one command; replies only when the call is this server's.
async fn command(hub: Hub, client: Client, msg: Message) {
    let mut tokens = msg.subject.split('.');
    let (Some("touchtone"), Some("calls"), Some(id), Some(cmd), None) = (
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
    ) else {
        return;
    };
    if !hub.has_call(id) {
        return;
    }
    let base = serde_json::json!({ "instance": hub.instance(), "call": id });
    let error = |name: &str, message: String| {
        let mut v = base.clone();
        v["error"] = name.into();
        v["message"] = message.into();
        v
    };
    let reply = match cmd {
        "dtmf" => match serde_json::from_slice::<DtmfRequest>(&msg.payload) {
            Err(_) => error(
                "InvalidJson",
                "expected {\"tones\":\"123\",\"duration\":100,\"gap\":70}".into(),
            ),
            Ok(req) => match hub.insert_dtmf(id, &req.tones, req.duration, req.gap).await {
                Ok(()) => {
                    let mut v = base.clone();
                    v["ok"] = true.into();
                    v
                }
                Err(e) => error(e.name(), e.to_string()),
            },
        },
        "hangup" => match hub.hang_up(id) {
            Ok(()) => {
                let mut v = base.clone();
                v["ok"] = true.into();
                v
            }
            Err(e) => error("NotFound", e.to_string()),
        },
        _ => return,
    };
    if let Some(reply_to) = msg.reply {
        let body = Bytes::from(reply.to_string());
        if let Err(e) = client.publish(reply_to, body).await {
            tracing::warn!("nats: cannot reply to a {cmd} command for call {id}: {e}");
        }
    }
}
