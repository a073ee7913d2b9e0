//! The calls of one endpoint: answer offers, list calls, subscribe to events, dial, hang up, metrics.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::WhipConfig;
use crate::error::{DtmfCallError, NotFound, OfferError, SubscribeError};
use crate::events::{EventLog, Subscription};
use crate::limits::{ClientRates, LogLimiter};
use crate::metrics::{Counters, MetricsSnapshot};
use crate::rtc;
use crate::sink::{EventSink, SinkEvent, SinkHandle, SinkMetrics, SinkOptions};

/// A new call id: 128 bits from the operating system's random source, as 32 hex digits. The id is a
/// capability (it allows hanging up and dialing), so it must not be guessable.
fn new_call_id() -> Result<String, OfferError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!("the OS random source failed: {e}");
        OfferError::Internal("cannot make a call id")
    })?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random instance name (64 bits as 16 hex digits), for a server started without one.
fn random_instance() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Not a capability, only a name: the process id and time will do.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
            ^ u64::from(std::process::id());
        bytes = t.to_le_bytes();
    }
    hex(&bytes)
}

/// An answered offer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The call's id (its resource is `/whip/{id}`).
    pub id: String,
    /// The SDP answer.
    pub sdp: String,
}

/// A call in progress.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// Its id.
    pub id: String,
    /// The local UDP address of its media.
    pub rtc_addr: SocketAddr,
    /// The client address that offered it, when known.
    pub client: Option<IpAddr>,
    /// How long it has been running.
    pub age: Duration,
}

/// A call's events on their way to its log and the sinks, run by the task that runs the call; when the
/// call ends (and this is dropped), the call leaves the book and its slot is freed.
struct CallEvents {
    hub: Hub,
    id: String,
    call: Arc<str>,
    log: Arc<EventLog>,
    seq: u64,
    closed: bool,
    permit: Option<OwnedSemaphorePermit>,
}

impl CallEvents {
    fn on_line(&mut self, line: rtc::Line) {
        if self.closed {
            return;
        }
        if line.is_digit {
            Counters::bump(&self.hub.inner.counters.digits);
        }
        self.hub.to_sinks(&self.call, self.seq, &line);
        self.seq += 1;
        self.closed = line.is_closed;
        self.log.push(line.json);
    }
}

impl Drop for CallEvents {
    fn drop(&mut self) {
        let mut calls = self.hub.calls();
        let entry = calls.remove(&self.id);
        if let Some(e) = &entry {
            // Moved from the live calls to the totals under the book's lock, which `metrics` reads
            // both under: the counters never go back.
            let (rx, tx) = e.control.datagrams();
            let c = &self.hub.inner.counters;
            c.datagrams_in.fetch_add(rx, Ordering::Relaxed);
            c.datagrams_out.fetch_add(tx, Ordering::Relaxed);
            Counters::bump(&c.calls_ended);
        }
        drop(calls);
        drop(entry);
        self.log.close();
        self.permit.take();
        self.hub.inner.call_ended.notify_waiters();
        tracing::info!("call {} ended", self.id);
    }
}

struct Entry {
    control: rtc::Control,
    log: Arc<EventLog>,
    started: Instant,
    client: Option<IpAddr>,
}

struct Inner {
    config: WhipConfig,
    calls: Mutex<HashMap<String, Entry>>,
    /// One permit per running call, held by the call's task until it ends.
    slots: Arc<Semaphore>,
    counters: Counters,
    draining: AtomicBool,
    rates: Mutex<ClientRates>,
    rejected_log: Mutex<LogLimiter>,
    call_ended: Notify,
    /// The DTLS certificate every call of this server presents (one key, not one per call).
    certificate: Mutex<Option<touchtone_rtc::DtlsCert>>,
    instance: Arc<str>,
    sinks: RwLock<Vec<SinkHandle>>,
}

/// The endpoint's calls, shared by the router and the application. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("calls", &self.active())
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with no calls.
    pub fn new(config: WhipConfig) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(config.max_calls)),
                rates: Mutex::new(ClientRates::new(config.calls_per_client)),
                rejected_log: Mutex::new(LogLimiter::new(Duration::from_secs(10))),
                calls: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                draining: AtomicBool::new(false),
                call_ended: Notify::new(),
                certificate: Mutex::new(touchtone_rtc::generate_certificate()),
                instance: config
                    .instance
                    .clone()
                    .unwrap_or_else(random_instance)
                    .into(),
                sinks: RwLock::new(Vec::new()),
                config,
            }),
        }
    }

    /// The DTLS certificate new calls present.
    fn certificate(&self) -> Option<touchtone_rtc::DtlsCert> {
        crate::lock::lock(&self.inner.certificate).clone()
    }

    /// Makes a new DTLS certificate for the calls that start from now on (live calls keep theirs).
    pub fn rotate_certificate(&self) {
        *crate::lock::lock(&self.inner.certificate) = touchtone_rtc::generate_certificate();
    }

    /// The configuration.
    pub fn config(&self) -> &WhipConfig {
        &self.inner.config
    }

    /// This server's instance name (the configured one or a random one).
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The URL of a call's resource: `/whip/{id}`, under the public URL when one is configured.
    pub fn location(&self, id: &str) -> String {
        match &self.inner.config.public_url {
            Some(base) => format!("{}/whip/{id}", base.trim_end_matches('/')),
            None => format!("/whip/{id}"),
        }
    }

    /// Whether a call with this id is running on this server.
    pub fn has_call(&self, id: &str) -> bool {
        self.calls().contains_key(id)
    }

    /// Sends every call's events from now on to `sink` too, through its own bounded queue: events
    /// that do not fit are dropped (and counted), so a slow sink never holds up a call. Starts the
    /// sink's tasks on the current Tokio runtime.
    pub fn add_sink(&self, sink: Arc<dyn EventSink>, options: SinkOptions) {
        let handle = SinkHandle::spawn(sink, options);
        crate::lock::write(&self.inner.sinks).push(handle);
    }

    /// The counters of each sink, in the order they were added.
    pub fn sink_metrics(&self) -> Vec<SinkMetrics> {
        let sinks = crate::lock::read(&self.inner.sinks);
        sinks.iter().map(SinkHandle::metrics).collect()
    }

    /// Waits until every sink has delivered or given up what it was given, for at most `within`;
    /// false if events were still pending then.
    pub async fn flush_sinks(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.sink_metrics().iter().all(|m| m.pending == 0) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Gives a call's event to every sink.
    fn to_sinks(&self, call: &Arc<str>, seq: u64, line: &rtc::Line) {
        let sinks = crate::lock::read(&self.inner.sinks);
        if sinks.is_empty() {
            return;
        }
        let event = SinkEvent::new(
            self.inner.instance.clone(),
            call.clone(),
            seq,
            line.kind,
            &line.json,
        );
        for sink in sinks.iter() {
            sink.offer(event.clone());
        }
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        crate::lock::lock(&self.inner.calls)
    }

    fn active(&self) -> usize {
        self.calls().len()
    }

    /// Answers an SDP offer from `client` and starts the call.
    pub async fn offer(&self, sdp: &str, client: Option<IpAddr>) -> Result<Answer, OfferError> {
        let result = self.offer_inner(sdp, client).await;
        if let Err(e) = &result {
            match e {
                OfferError::TooManyCalls { .. } => {
                    Counters::bump(&self.inner.counters.calls_rejected)
                }
                OfferError::InvalidSdp(_)
                | OfferError::ResourcesExhausted
                | OfferError::Internal(_) => Counters::bump(&self.inner.counters.errors),
                _ => {}
            }
            self.note_rejected(e);
        }
        result
    }

    async fn offer_inner(&self, sdp: &str, client: Option<IpAddr>) -> Result<Answer, OfferError> {
        let cfg = &self.inner.config;
        if self.is_draining() {
            return Err(OfferError::Draining);
        }
        // The slot is reserved before anything awaits, and held by the call's task for its life.
        let permit = self
            .inner
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| OfferError::TooManyCalls { max: cfg.max_calls })?;
        if let Some(ip) = client {
            let now = Instant::now();
            let rate = crate::lock::lock(&self.inner.rates).take(ip, now);
            rate.map_err(|retry_after| OfferError::RateLimited { retry_after })?;
        }
        let id = new_call_id()?;
        let record = cfg
            .record_dir
            .as_ref()
            .map(|d| d.join(format!("{id}.pcapng")));
        let peer = touchtone_rtc::PeerConfig {
            dtls_cert: self.certificate(),
            ptime: cfg.ptime,
            ..touchtone_rtc::PeerConfig::default()
        };
        let mut answered = rtc::answer(
            &cfg.udp,
            peer,
            cfg.idle_timeout,
            cfg.yield_window,
            cfg.inband_detect,
            sdp,
            record.as_deref(),
        )
        .await?;
        let sdp = std::mem::take(&mut answered.answer);
        let log = EventLog::new(cfg.history_per_call, cfg.max_subscribers_per_call);
        let started = Instant::now();
        let mut events = CallEvents {
            hub: self.clone(),
            id: id.clone(),
            call: id.as_str().into(),
            log: log.clone(),
            seq: 0,
            closed: false,
            permit: Some(permit),
        };
        let call_id = events.call.clone();
        let control = answered.start(started, call_id, move |line| events.on_line(line));
        tracing::info!("call {id} answered on {}", control.local_addr());
        {
            // Under the book's lock, which the call's end takes too: a call that ended before this
            // (its port went away) reads as ended here, and its end found nothing to remove.
            let mut calls = self.calls();
            if control.is_ended() {
                return Err(OfferError::Internal("the call ended as it started"));
            }
            calls.insert(
                id.clone(),
                Entry {
                    control,
                    log,
                    started,
                    client,
                },
            );
        }
        Counters::bump(&self.inner.counters.calls_total);
        Ok(Answer { id, sdp })
    }

    /// Logs a rejected offer, at most once per 10 s with the count of those not logged.
    fn note_rejected(&self, e: &OfferError) {
        let allowed = crate::lock::lock(&self.inner.rejected_log).allow(Instant::now());
        if let Some(more) = allowed {
            tracing::warn!("offer refused: {e} ({more} more refused since the last report)");
        }
    }

    /// The calls in progress.
    pub fn list(&self) -> Vec<CallInfo> {
        self.calls()
            .iter()
            .map(|(id, e)| CallInfo {
                id: id.clone(),
                rtc_addr: e.control.local_addr(),
                client: e.client,
                age: e.started.elapsed(),
            })
            .collect()
    }

    /// Subscribes to a call's events, starting after `last_seen` (an SSE `Last-Event-ID`) or with the
    /// oldest event kept.
    pub fn subscribe(
        &self,
        id: &str,
        last_seen: Option<u64>,
    ) -> Result<Subscription, SubscribeError> {
        let log = self
            .calls()
            .get(id)
            .map(|e| e.log.clone())
            .ok_or(SubscribeError::NotFound)?;
        log.subscribe(last_seen)
    }

    /// `insertDTMF(tones, duration_ms, gap_ms)` on the call's sender: the server dials the remote.
    pub async fn insert_dtmf(
        &self,
        id: &str,
        tones: &str,
        duration_ms: u32,
        gap_ms: u32,
    ) -> Result<(), DtmfCallError> {
        let control = self
            .calls()
            .get(id)
            .map(|e| e.control.clone())
            .ok_or(DtmfCallError::NotFound)?;
        control.insert_dtmf(tones, duration_ms, gap_ms).await
    }

    /// Hangs up a call; its subscribers still get the `closed` event.
    pub fn hang_up(&self, id: &str) -> Result<(), NotFound> {
        let calls = self.calls();
        let entry = calls.get(id).ok_or(NotFound)?;
        entry.control.close();
        Ok(())
    }

    /// Hangs up every call.
    pub fn hang_up_all(&self) {
        for e in self.calls().values() {
            e.control.close();
        }
    }

    /// How many calls have ended since the hub started; cheap, unlike [`Hub::metrics`].
    pub fn calls_ended(&self) -> u64 {
        self.inner.counters.calls_ended.load(Ordering::Relaxed)
    }

    /// The counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let c = &self.inner.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let calls = self.calls();
        let (active, live_in, live_out) =
            calls.values().fold((0u64, 0u64, 0u64), |(n, i, o), e| {
                let (rx, tx) = e.control.datagrams();
                (n + 1, i + rx, o + tx)
            });
        let (ended_in, ended_out) = (get(&c.datagrams_in), get(&c.datagrams_out));
        drop(calls);
        let port = match &self.inner.config.udp {
            crate::config::UdpMode::Shared(endpoint) => endpoint.stats(),
            crate::config::UdpMode::PerCall(_) => touchtone_rtc::EndpointStats::default(),
        };
        MetricsSnapshot {
            calls_active: active,
            calls_total: get(&c.calls_total),
            calls_rejected: get(&c.calls_rejected),
            digits_received: get(&c.digits),
            datagrams_received: ended_in + live_in,
            datagrams_sent: ended_out + live_out,
            errors: get(&c.errors),
            port_unroutable: port.unroutable,
            port_stalls: port.stalls,
            sinks: self.sink_metrics(),
        }
    }

    /// Stops taking new calls (offers get 503 with `Retry-After`, `/healthz` says not ready); calls in
    /// progress go on.
    pub fn drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// Whether [`Hub::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Waits until no call is running.
    pub async fn wait_idle(&self) {
        loop {
            let ended = self.inner.call_ended.notified();
            if self.active() == 0 {
                return;
            }
            ended.await;
        }
    }
}
