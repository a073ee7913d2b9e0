//! `touchtone serve`: the WHIP endpoint of `touchtone-whip` with the demo page, until a signal drains it.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use touchtone_whip::nats::NatsBridge;
use touchtone_whip::webhook::{Webhook, WebhookConfig};
use touchtone_whip::{
    CallRate, Hub, Ptime, ServerLimits, SinkOptions, UdpEndpoint, UdpMode, WhipConfig,
};

use crate::Failure;

/// The web page, embedded in the binary.
const PAGE: &str = include_str!("../web/index.html");

/// Arguments of `touchtone serve`. Each is also read from the environment variable named in `--help`.
#[derive(clap::Args)]
pub struct Args {
    /// HTTP address to listen on.
    #[arg(long, env = "TOUCHTONE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The one UDP port every call's media uses (ICE, DTLS, SRTP), as ADDR:PORT; `[::]:PORT` takes IPv4
    /// and IPv6. Port 0 picks a free one.
    #[arg(long, env = "TOUCHTONE_UDP_LISTEN", default_value = "127.0.0.1:8080")]
    udp_listen: SocketAddr,
    /// An address browsers reach this server at (behind NAT, in a container), announced as the calls'
    /// host candidate with the UDP port; repeatable or comma-separated, IPv4 and IPv6. Needed when
    /// --udp-listen is unspecified (0.0.0.0 or [::]).
    #[arg(long, env = "TOUCHTONE_PUBLIC_IP", value_delimiter = ',')]
    public_ip: Vec<IpAddr>,
    /// Give each call its own UDP socket on this address instead of the one --udp-listen port.
    #[arg(
        long,
        env = "TOUCHTONE_RTC_BIND",
        value_name = "IP",
        conflicts_with = "public_ip"
    )]
    port_per_call: Option<IpAddr>,
    /// Most calls at once; more get 503.
    #[arg(long, env = "TOUCHTONE_MAX_CALLS", default_value_t = 100)]
    max_calls: usize,
    /// Seconds a call may go without a packet from the browser before it is ended.
    #[arg(long, env = "TOUCHTONE_IDLE_TIMEOUT", default_value_t = 30)]
    idle_timeout: u64,
    /// Milliseconds before each tone change a dialing call yields instead of sleeping, so the event
    /// is on time; 0 saves that CPU on busy servers, for events about 1 ms late (median).
    #[arg(long, env = "TOUCHTONE_YIELD_WINDOW_MS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=20))]
    yield_window_ms: u64,
    /// Also detect DTMF played as audio in each call (G.711, or Opus decoded at 48 kHz), reported with
    /// source "inband" and not twice when telephone-event carries the same key; costs CPU per call.
    #[arg(long, env = "TOUCHTONE_INBAND_DETECT", value_parser = clap::builder::FalseyValueParser::new())]
    inband_detect: bool,
    /// Milliseconds of audio in each packet the server sends while it is not dialing (20, 40 or 60):
    /// browsers send 20; 60 sends a third as many packets per call, for servers that carry many calls.
    /// Over 20 the answer asks callers for such packets too (a=ptime; Chromium does, Firefox is not
    /// asked: its DTMF goes wrong at a longer ptime). A caller's own a=ptime is what it gets sent.
    #[arg(long, env = "TOUCHTONE_PTIME", default_value_t = Ptime::Ms20, value_name = "MS")]
    ptime: Ptime,
    /// Write each call's decrypted RTP (both directions) to DIR/<call id>.pcapng, for Wireshark or
    /// `touchtone pcap`.
    #[arg(long, env = "TOUCHTONE_RECORD", value_name = "DIR")]
    record: Option<PathBuf>,
    /// New calls per second one client IP may open (after a burst of --client-call-burst); more get 429.
    #[arg(long, env = "TOUCHTONE_CLIENT_CALL_RATE", default_value_t = 5.0)]
    client_call_rate: f64,
    /// New calls one client IP may open at once after a quiet period.
    #[arg(long, env = "TOUCHTONE_CLIENT_CALL_BURST", default_value_t = 20)]
    client_call_burst: u32,
    /// Seconds a client has to send a request's headers, and then its body; slower ones are cut off.
    #[arg(long, env = "TOUCHTONE_REQUEST_TIMEOUT", default_value_t = 10)]
    request_timeout: u64,
    /// HTTP connections open at once; more wait.
    #[arg(long, env = "TOUCHTONE_MAX_CONNECTIONS", default_value_t = 512)]
    max_connections: usize,
    /// HTTP connections open at once from one IP address; more get 503.
    #[arg(long, env = "TOUCHTONE_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    max_connections_per_ip: usize,
    /// Origin allowed to call the endpoint from its own page (CORS), repeatable or comma-separated;
    /// `*` allows any.
    #[arg(long, env = "TOUCHTONE_ALLOW_ORIGIN", value_delimiter = ',')]
    allow_origin: Vec<String>,
    /// Require `Authorization: Bearer TOKEN` on every WHIP, event and DTMF request.
    #[arg(
        long,
        env = "TOUCHTONE_TOKEN",
        conflicts_with = "token_file",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Read the bearer token from a file (its first line).
    #[arg(long, env = "TOUCHTONE_TOKEN_FILE", value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// On SIGTERM or SIGINT, seconds live calls may run on (new calls get 503) before they are hung up.
    #[arg(long, env = "TOUCHTONE_DRAIN_TIMEOUT", default_value_t = 30)]
    drain_timeout: u64,
    /// This server's name in the events sent to webhooks and NATS (default: random).
    #[arg(long, env = "TOUCHTONE_INSTANCE")]
    instance: Option<String>,
    /// The base URL clients reach this server at (`https://host:port`): `Location` is then absolute,
    /// so a load balancer in front sends a call's later requests to the server that owns it.
    #[arg(long, env = "TOUCHTONE_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// POST every call event as JSON to this http:// URL (repeatable or comma-separated); signed with
    /// --webhook-secret, retried with backoff, queued per destination (full queues drop, counted).
    #[arg(
        long,
        env = "TOUCHTONE_WEBHOOK",
        value_name = "URL",
        value_delimiter = ','
    )]
    webhook: Vec<String>,
    /// The HMAC-SHA256 key of the webhooks' `X-Touchtone-Signature` header.
    #[arg(long, env = "TOUCHTONE_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Tries per event and webhook, the first included.
    #[arg(long, env = "TOUCHTONE_WEBHOOK_ATTEMPTS", default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(1..=30))]
    webhook_attempts: u32,
    /// Publish every call event on touchtone.calls.<id>.<type> of this NATS server and take commands
    /// (request/reply on touchtone.calls.<id>.dtmf and .hangup).
    #[arg(long, env = "TOUCHTONE_NATS", value_name = "URL")]
    nats: Option<String>,
    /// Events kept per call for event subscribers that join late, reconnect (`Last-Event-ID`) or fall
    /// behind; each costs a call about 140 bytes once its history is full.
    #[arg(long, env = "TOUCHTONE_EVENT_HISTORY", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    event_history: u64,
    /// Events queued per sink (webhook destination or NATS) before new ones are dropped.
    #[arg(long, env = "TOUCHTONE_SINK_QUEUE", default_value_t = 4096)]
    sink_queue: usize,
}

impl Args {
    fn token(&self) -> Result<Option<String>, Failure> {
        if let Some(t) = &self.token {
            return Ok(Some(t.clone()));
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::input(format!("--token-file {}: {e}", path.display())))?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(Failure::input(format!(
                "--token-file {}: the file is empty",
                path.display()
            )));
        }
        Ok(Some(token))
    }

    fn config(&self) -> Result<WhipConfig, Failure> {
        if !self.client_call_rate.is_finite() || self.client_call_rate <= 0.0 {
            return Err(Failure::input(
                "--client-call-rate must be a number above 0",
            ));
        }
        Ok(WhipConfig {
            udp: UdpMode::PerCall(self.udp_listen.ip()),
            max_calls: self.max_calls,
            idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
            yield_window: Duration::from_millis(self.yield_window_ms),
            record_dir: self.record.clone(),
            inband_detect: self.inband_detect,
            ptime: self.ptime,
            body_read_timeout: Duration::from_secs(self.request_timeout.max(1)),
            calls_per_client: CallRate {
                per_second: self.client_call_rate,
                burst: self.client_call_burst.max(1),
            },
            allowed_origins: self.allow_origin.clone(),
            token: self.token()?,
            instance: self.instance.clone(),
            public_url: self.public_url()?,
            history_per_call: self.event_history as usize,
            ..WhipConfig::default()
        })
    }

    /// `--public-url` checked: `http` or `https`, a host, no query or fragment.
    fn public_url(&self) -> Result<Option<String>, Failure> {
        let Some(url) = &self.public_url else {
            return Ok(None);
        };
        let bad = || {
            Failure::input(format!(
                "--public-url {url:?}: expected a base URL such as https://media1.example:8443"
            ))
        };
        let uri: axum::http::Uri = url.parse().map_err(|_| bad())?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        if !scheme_ok || uri.host().is_none() || uri.query().is_some() || url.contains('#') {
            return Err(bad());
        }
        Ok(Some(url.trim_end_matches('/').to_string()))
    }

    /// The webhooks, checked before the server starts.
    fn webhooks(&self) -> Result<Vec<Webhook>, Failure> {
        if !self.webhook.is_empty() && self.webhook_secret.is_none() {
            let _ = writeln!(
                std::io::stderr(),
                "touchtone serve: warning: webhooks are not signed (no --webhook-secret)"
            );
        }
        self.webhook
            .iter()
            .map(|url| {
                let mut cfg = WebhookConfig::new(url.trim(), self.webhook_secret.clone());
                cfg.max_attempts = self.webhook_attempts;
                Webhook::new(cfg).map_err(|e| Failure::input(format!("--webhook: {e}")))
            })
            .collect()
    }

    fn sink_options(&self) -> SinkOptions {
        SinkOptions {
            queue: self.sink_queue.max(1),
            ..SinkOptions::default()
        }
    }

    fn limits(&self) -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_secs(self.request_timeout.max(1)),
            max_connections: self.max_connections.max(1),
            max_connections_per_ip: self.max_connections_per_ip.max(1),
            ..ServerLimits::default()
        }
    }
}

/// Runs `touchtone serve` until SIGTERM or SIGINT, then drains (see [`drain`]) and exits 0.
pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(dir) = &args.record {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::input(format!("--record {}: {e}", dir.display())))?;
    }
    let config = args.config()?;
    let webhooks = args.webhooks()?;
    let token = config.token.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(crate::heap::on_park)
        .build()
        .map_err(|e| Failure::input(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let mut signals = Signals::new()?;
        let listener = touchtone_whip::listen(args.listen)
            .map_err(|e| Failure::input(format!("cannot listen on {}: {e}", args.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::input(e.to_string()))?;
        let mut config = config;
        config.udp = match args.port_per_call {
            Some(ip) => UdpMode::PerCall(ip),
            None => UdpMode::Shared(
                UdpEndpoint::bind(args.udp_listen, &args.public_ip)
                    .await
                    .map_err(|e| {
                        Failure::input(format!("--udp-listen {}: {e}", args.udp_listen))
                    })?,
            ),
        };
        let media = match &config.udp {
            UdpMode::Shared(e) => {
                let announced: Vec<String> = e.announced().iter().map(|a| a.to_string()).collect();
                format!(
                    "touchtone serve: media on UDP {} (announced as {})",
                    e.local_addr(),
                    announced.join(", ")
                )
            }
            UdpMode::PerCall(ip) => {
                format!("touchtone serve: media on a UDP port per call on {ip}")
            }
        };
        let (whip, hub) = touchtone_whip::router(config);
        for webhook in webhooks {
            hub.add_sink(Arc::new(webhook), args.sink_options());
        }
        let _nats: Option<NatsBridge> = match &args.nats {
            Some(url) => {
                let err =
                    |e: touchtone_whip::nats::NatsError| Failure::input(format!("--nats: {e}"));
                let client = touchtone_whip::nats::connect(url).await.map_err(err)?;
                let bridge = NatsBridge::attach(&hub, client, args.sink_options())
                    .await
                    .map_err(err)?;
                Some(bridge)
            }
            None => None,
        };
        let sinks = hub.clone();
        let app = Router::new()
            .route("/", get(|| async { Html(PAGE) }))
            .merge(whip);
        let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
        eprintln!("touchtone serve: open http://{addr}/{query} in a browser (Ctrl-C to stop)");
        // Not eprintln!: a closed stderr must not stop the server.
        let _ = writeln!(std::io::stderr(), "{media}");
        if !args.webhook.is_empty() || args.nats.is_some() {
            let _ = writeln!(
                std::io::stderr(),
                "touchtone serve: instance {}",
                hub.instance()
            );
        }
        let drain_timeout = Duration::from_secs(args.drain_timeout);
        tokio::spawn(give_back_memory(hub.clone()));
        let shutdown = async move {
            signals.recv().await;
            drain(&hub, drain_timeout, &mut signals).await;
        };
        touchtone_whip::serve(listener, app, args.limits(), shutdown).await;
        // The calls' last events (`closed`) go out before the process ends.
        if !sinks.flush_sinks(Duration::from_secs(5)).await {
            let _ = writeln!(
                std::io::stderr(),
                "touchtone serve: events still queued for sinks at exit were lost"
            );
        }
        Ok(())
    })
}

/// Returns the heap that ended calls freed to the system: the allocator keeps freed memory for reuse,
/// in each thread's own heap, so without this a server's RSS stays at its busiest. Checked every 10 s;
/// when calls ended since (however short they were), every runtime thread gives its free pages back
/// the next time it idles.
async fn give_back_memory(hub: Hub) {
    let mut last = hub.calls_ended();
    let mut rounds = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let now = hub.calls_ended();
        if now > last {
            // This tick and the next: what calls still ending after this one freed goes back too.
            rounds = 2;
        }
        last = now;
        if rounds > 0 {
            rounds -= 1;
            crate::heap::give_back();
            // Wake the idle threads, so that they idle again and give theirs back too.
            for _ in 0..16 {
                tokio::spawn(tokio::task::yield_now());
            }
        }
    }
}

/// Stops taking calls (offers get 503, `/healthz` not ready) and lets live calls run until they end,
/// `timeout` passes, or a second signal comes; then hangs up what is left.
async fn drain(hub: &Hub, timeout: Duration, signals: &mut Signals) {
    let live = hub.list().len();
    // Not eprintln!: a closed stderr must not stop the drain.
    let _ = writeln!(
        std::io::stderr(),
        "touchtone serve: draining {live} call(s), at most {timeout:?} (signal again to stop now)"
    );
    hub.drain();
    tokio::select! {
        () = hub.wait_idle() => return,
        () = tokio::time::sleep(timeout) => {}
        () = signals.recv() => {}
    }
    hub.hang_up_all();
    let _ = tokio::time::timeout(Duration::from_secs(2), hub.wait_idle()).await;
}

/// SIGTERM and SIGINT (Ctrl-C).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, Failure> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let err = |e: std::io::Error| Failure::input(format!("cannot handle signals: {e}"));
            Ok(Signals {
                term: signal(SignalKind::terminate()).map_err(err)?,
                int: signal(SignalKind::interrupt()).map_err(err)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
