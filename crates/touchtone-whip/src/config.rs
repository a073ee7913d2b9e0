//! Settings of the endpoint.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use touchtone_rtc::{Ptime, UdpEndpoint};

use crate::limits::CallRate;

/// Where calls send and receive their media.
#[derive(Debug, Clone)]
pub enum UdpMode {
    /// Every call on one UDP port (what servers behind firewalls and NATs need).
    Shared(UdpEndpoint),
    /// Each call on its own UDP socket, bound to this address on a free port.
    PerCall(IpAddr),
}

/// Settings of a WHIP endpoint ([`router`](crate::router)).
#[derive(Debug, Clone)]
pub struct WhipConfig {
    /// Where calls send and receive their media: one shared UDP port, or a socket per call.
    pub udp: UdpMode,
    /// Most calls at once; more offers get 503.
    pub max_calls: usize,
    /// Time a call may go without a datagram from the remote before it is ended.
    pub idle_timeout: Duration,
    /// Time before each tone change a dialing call yields instead of sleeping (0 saves CPU).
    pub yield_window: Duration,
    /// Write each call's decrypted RTP to `DIR/<call id>.pcapng`.
    pub record_dir: Option<PathBuf>,
    /// Largest request body (SDP offers are a few KB); larger gets 413 before the body is read.
    pub max_body: usize,
    /// Time to receive a request body once its headers arrived; slower clients get 408.
    pub body_read_timeout: Duration,
    /// Events kept per call for subscribers that join late, reconnect or fall behind (256).
    pub history_per_call: usize,
    /// Event subscribers per call at once; more get 503.
    pub max_subscribers_per_call: usize,
    /// New calls per client IP address; faster gets 429.
    pub calls_per_client: CallRate,
    /// Origins allowed to call the endpoint from a page (CORS); empty: same origin only.
    pub allowed_origins: Vec<String>,
    /// When set, every WHIP, event and DTMF request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// This server's name in the events sent to sinks; `None`: a random one.
    pub instance: Option<String>,
    /// The base URL clients reach this server at (`https://host:port`): `Location` is then absolute,
    /// so a load balancer in front can send a call's later requests to the server that owns it.
    pub public_url: Option<String>,
    /// Run the in-band DTMF detector on each call's received audio (G.711, or Opus decoded at 48 kHz):
    /// digits a phone plays into its microphone, or a gateway without telephone-event, are reported
    /// with `"source":"inband"`. Costs CPU per call (BENCHMARKS.md); off by default.
    pub inband_detect: bool,
    /// How much audio each packet the server sends carries while it is not dialing: 20 ms as browsers
    /// send, 40 or 60 ms for fewer packets per call (BENCHMARKS.md, "Load"); while it dials, 20 ms.
    /// Over 20 ms the answer asks the caller for such packets too (`a=ptime`; Chromium does so), except
    /// Firefox, whose DTMF goes wrong at a longer ptime; a caller's own `a=ptime` is followed.
    pub ptime: Ptime,
}

impl Default for WhipConfig {
    fn default() -> Self {
        WhipConfig {
            udp: UdpMode::PerCall(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            max_calls: 100,
            idle_timeout: Duration::from_secs(30),
            yield_window: Duration::from_millis(2),
            record_dir: None,
            max_body: 64 * 1024,
            body_read_timeout: Duration::from_secs(10),
            history_per_call: 256,
            max_subscribers_per_call: 8,
            calls_per_client: CallRate::default(),
            allowed_origins: Vec::new(),
            token: None,
            instance: None,
            public_url: None,
            inband_detect: false,
            ptime: Ptime::default(),
        }
    }
}
