//! A call's event history: one bounded ring shared by every subscriber. A subscriber is a cursor into
//! the ring, so a subscriber that never reads holds no events of its own; when the ring has moved past
//! its cursor it is told how many events it missed ([`CallEvent::Lagged`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::Stream;
use tokio::sync::watch;

use crate::error::SubscribeError;

/// What a subscriber reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// One event: its sequence number in the call (the SSE `id:`) and its JSON object.
    Event {
        /// 0 for the call's first event, then 1, 2, ...
        id: u64,
        /// The event as a JSON object (see [`EventLine`](crate::EventLine)).
        json: Arc<str>,
    },
    /// Events were dropped from the history before this subscriber read them.
    Lagged {
        /// How many.
        missed: u64,
    },
}

struct Ring {
    /// Sequence number of `lines[0]`.
    first: u64,
    lines: VecDeque<Arc<str>>,
    capacity: usize,
    closed: bool,
}

/// The history and live feed of one call.
pub(crate) struct EventLog {
    ring: Mutex<Ring>,
    /// Bumped on every push and on close, to wake subscribers.
    wake: watch::Sender<u64>,
    subscribers: AtomicUsize,
    max_subscribers: usize,
}

impl EventLog {
    /// A log keeping the last `capacity` events for at most `max_subscribers` subscribers.
    pub fn new(capacity: usize, max_subscribers: usize) -> Arc<Self> {
        Arc::new(EventLog {
            ring: Mutex::new(Ring {
                first: 0,
                lines: VecDeque::with_capacity(capacity.min(64)),
                capacity: capacity.max(1),
                closed: false,
            }),
            wake: watch::Sender::new(0),
            subscribers: AtomicUsize::new(0),
            max_subscribers,
        })
    }

    /// Appends an event, dropping the oldest when the ring is full.
    pub fn push(&self, json: impl Into<Arc<str>>) {
        let next = {
            let mut ring = crate::lock::lock(&self.ring);
            if ring.lines.len() == ring.capacity {
                ring.lines.pop_front();
                ring.first += 1;
            }
            ring.lines.push_back(json.into());
            ring.first + ring.lines.len() as u64
        };
        self.wake.send_replace(next);
    }

    /// No more events: subscribers end after reading what is left.
    pub fn close(&self) {
        crate::lock::lock(&self.ring).closed = true;
        self.wake.send_modify(|_| {});
    }

    /// Events held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        crate::lock::lock(&self.ring).lines.len()
    }

    /// A subscriber starting after event `last_seen` (the SSE `Last-Event-ID`), or at the oldest kept.
    pub fn subscribe(
        self: &Arc<Self>,
        last_seen: Option<u64>,
    ) -> Result<Subscription, SubscribeError> {
        self.subscribers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_subscribers).then_some(n + 1)
            })
            .map_err(|_| SubscribeError::TooManySubscribers {
                max: self.max_subscribers,
            })?;
        Ok(Subscription {
            log: self.clone(),
            cursor: last_seen.map_or(0, |id| id.saturating_add(1)),
            wake: self.wake.subscribe(),
            batch: VecDeque::new(),
        })
    }
}

/// Events read per lock of the ring.
const BATCH: usize = 32;

/// A reader of one call's events: the kept history first (or what follows `Last-Event-ID`), then live
/// events until the call ends.
pub struct Subscription {
    log: Arc<EventLog>,
    cursor: u64,
    wake: watch::Receiver<u64>,
    batch: VecDeque<CallEvent>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next event; `None` once the call has ended and every kept event was read.
    pub async fn next(&mut self) -> Option<CallEvent> {
        loop {
            if let Some(ev) = self.batch.pop_front() {
                return Some(ev);
            }
            // Mark the current version seen before reading the ring: a push after the read wakes us.
            self.wake.borrow_and_update();
            if self.fill() {
                continue;
            }
            if crate::lock::lock(&self.log.ring).closed {
                return None;
            }
            if self.wake.changed().await.is_err() {
                // The log is gone: read what is left, then end.
                if !self.fill() {
                    return None;
                }
            }
        }
    }

    /// Moves up to [`BATCH`] events from the ring into `batch`; false when there was nothing new.
    fn fill(&mut self) -> bool {
        let ring = crate::lock::lock(&self.log.ring);
        if self.cursor < ring.first {
            self.batch.push_back(CallEvent::Lagged {
                missed: ring.first - self.cursor,
            });
            self.cursor = ring.first;
        }
        let offset = (self.cursor - ring.first) as usize;
        for json in ring.lines.iter().skip(offset).take(BATCH) {
            self.batch.push_back(CallEvent::Event {
                id: self.cursor,
                json: json.clone(),
            });
            self.cursor += 1;
        }
        !self.batch.is_empty()
    }

    /// The subscription as a stream.
    pub fn into_stream(self) -> impl Stream<Item = CallEvent> + Send + 'static {
        futures_util::stream::unfold(self, |mut sub| async move {
            let ev = sub.next().await?;
            Some((ev, sub))
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.log.subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(events: &[CallEvent]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                CallEvent::Event { id, .. } => Some(*id),
                CallEvent::Lagged { .. } => None,
            })
            .collect()
    }

    async fn drain(sub: &mut Subscription) -> Vec<CallEvent> {
        let mut out = Vec::new();
        while let Some(e) = sub.next().await {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn history_then_live_events_each_once_with_ids() {
        let log = EventLog::new(100, 4);
        log.push("a");
        let mut sub = log.subscribe(None).unwrap();
        log.push("b");
        assert_eq!(
            sub.next().await,
            Some(CallEvent::Event {
                id: 0,
                json: "a".into()
            })
        );
        log.push("c");
        log.close();
        assert_eq!(ids(&drain(&mut sub).await), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_reconnect_resumes_after_last_event_id() {
        let log = EventLog::new(100, 4);
        for s in ["a", "b", "c", "d"] {
            log.push(s);
        }
        log.close();
        let mut sub = log.subscribe(Some(1)).unwrap();
        assert_eq!(ids(&drain(&mut sub).await), vec![2, 3]);
        let mut sub = log.subscribe(Some(3)).unwrap();
        assert_eq!(drain(&mut sub).await, vec![]);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_how_many_it_missed() {
        let log = EventLog::new(3, 4);
        let mut sub = log.subscribe(None).unwrap();
        for i in 0..10 {
            log.push(i.to_string());
        }
        log.close();
        let events = drain(&mut sub).await;
        assert_eq!(events[0], CallEvent::Lagged { missed: 7 });
        assert_eq!(ids(&events), vec![7, 8, 9]);
    }

    #[tokio::test]
    async fn subscribers_that_never_read_hold_no_copies() {
        let log = EventLog::new(50, 1002);
        let subs: Vec<_> = (0..1000).map(|_| log.subscribe(None).unwrap()).collect();
        for i in 0..100_000 {
            log.push(format!("{{\"n\":{i}}}"));
        }
        // The ring holds the last 50 events, once, whatever the subscribers did.
        assert_eq!(log.len(), 50);
        let mut a = log.subscribe(Some(99_990)).unwrap();
        let mut b = log.subscribe(Some(99_990)).unwrap();
        let (Some(CallEvent::Event { json: ja, .. }), Some(CallEvent::Event { json: jb, .. })) =
            (a.next().await, b.next().await)
        else {
            panic!("no events");
        };
        assert!(Arc::ptr_eq(&ja, &jb), "subscribers share one copy");
        drop(subs);
    }

    #[test]
    fn subscribers_per_call_are_limited_and_released() {
        let log = EventLog::new(10, 2);
        let a = log.subscribe(None).unwrap();
        let _b = log.subscribe(None).unwrap();
        assert_eq!(
            log.subscribe(None).unwrap_err(),
            SubscribeError::TooManySubscribers { max: 2 }
        );
        drop(a);
        assert!(log.subscribe(None).is_ok());
    }
}
