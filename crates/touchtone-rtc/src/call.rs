//! Runs a [`Peer`] on a tokio UDP socket: its own socket and task, or a port shared with other calls
//! ([`UdpEndpoint`](crate::UdpEndpoint)) whose tasks run them all; no thread per call.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::control::{Command, Counters, EventOut, pass_on};
use crate::error::{InsertDtmfError, RtcError};
use crate::event::PeerEvent;
use crate::peer::{Peer, PeerConfig, Transmit};
use crate::port::{Adopted, PortMsg, PortSlot};
use crate::record::{PcapngRecorder, RecordError};
use crate::udp::{for_socket, recv_queued};

/// Default time without any datagram from the remote after which a call is ended.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time before each `tonechange` that a call yields instead of sleeping: the runtime's
/// timer has millisecond ticks and wakes up to a tick late, while a task that yields keeps its
/// worker awake, so the event goes out on time. Longer windows cost CPU and measured no better.
pub const DEFAULT_YIELD_WINDOW: Duration = Duration::from_millis(2);

/// Where a call's datagrams come from and go to.
#[derive(Debug)]
enum Transport {
    /// Its own UDP socket, run by the call's own task.
    Own(UdpSocket),
    /// A port shared with other calls ([`UdpEndpoint`](crate::UdpEndpoint)), whose task runs it.
    Port(PortSlot),
}

/// A peer bound to its UDP socket, before it runs.
#[derive(Debug)]
pub struct Call {
    /// The sans-IO peer; use it for offer/answer before [`Call::spawn`].
    pub peer: Peer,
    transport: Transport,
    yield_window: Duration,
    recorder: Option<PcapngRecorder>,
}

impl Call {
    /// Binds a UDP socket on `ip` (any free port) and creates a peer for it.
    pub async fn bind(ip: IpAddr, config: PeerConfig) -> Result<Call, RtcError> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        Call::with_socket(socket, config)
    }

    /// Runs on a UDP socket the application bound itself (a chosen port, another network namespace).
    /// Must be called inside a tokio runtime.
    pub fn from_std(socket: std::net::UdpSocket, config: PeerConfig) -> Result<Call, RtcError> {
        socket.set_nonblocking(true)?;
        Call::with_socket(UdpSocket::from_std(socket)?, config)
    }

    fn with_socket(socket: UdpSocket, config: PeerConfig) -> Result<Call, RtcError> {
        let local = socket.local_addr()?;
        let mut peer = Peer::new(Instant::now(), local, config)?;
        peer.set_idle_timeout(Some(DEFAULT_IDLE_TIMEOUT));
        Ok(Call {
            peer,
            transport: Transport::Own(socket),
            yield_window: DEFAULT_YIELD_WINDOW,
            recorder: None,
        })
    }

    /// A call fed by a shared port's router.
    pub(crate) fn on_endpoint(mut peer: Peer, slot: PortSlot) -> Call {
        peer.set_idle_timeout(Some(DEFAULT_IDLE_TIMEOUT));
        Call {
            peer,
            transport: Transport::Port(slot),
            yield_window: DEFAULT_YIELD_WINDOW,
            recorder: None,
        }
    }

    /// Sets how long the call may go without hearing from the remote before it is ended (datagrams
    /// that are not this call's ICE, DTLS or SRTP do not count).
    pub fn set_idle_timeout(&mut self, timeout: Duration) {
        self.peer.set_idle_timeout(Some(timeout));
    }

    /// Sets how long before each `tonechange` the call yields instead of sleeping
    /// ([`DEFAULT_YIELD_WINDOW`]); zero saves that CPU, for events about a timer tick (1 ms) late.
    pub fn set_yield_window(&mut self, window: Duration) {
        self.yield_window = window;
    }

    /// Records the call's RTP, both directions, decrypted, to a pcapng file at `path`.
    pub fn record_to(&mut self, path: &std::path::Path) -> Result<(), RecordError> {
        self.recorder = Some(PcapngRecorder::create(path)?);
        self.peer.set_record_rtp(true);
        Ok(())
    }

    /// Starts the call on the current tokio runtime (its own task, or its shared port's) and returns
    /// its handle.
    pub fn spawn(self) -> CallHandle {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        CallHandle {
            control: self.start(EventOut::Channel(ev_tx)),
            events: ev_rx,
        }
    }

    /// Starts the call like [`spawn`](Self::spawn), with each event handed to `on_event` as it
    /// happens, on the task that runs the call. That spares a server with many calls a task switch
    /// per event, which under load delays the event behind every other task. `on_event` must return
    /// quickly and must not block: media waits for it. It is dropped when the call ends, after
    /// [`PeerEvent::Closed`] (or without it, if the call's runtime or port goes away first).
    pub fn spawn_with_events(
        self,
        on_event: impl FnMut(PeerEvent) + Send + 'static,
    ) -> CallControl {
        self.start(EventOut::Function(Box::new(on_event)))
    }

    fn start(self, events: EventOut) -> CallControl {
        let local = self.peer.local_addr();
        let stats = Arc::new(Counters::default());
        let Call {
            peer,
            transport,
            yield_window,
            recorder,
        } = self;
        let cmd = match transport {
            Transport::Own(socket) => {
                let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
                let own = OwnCall {
                    peer,
                    socket,
                    yield_window,
                    recorder,
                };
                tokio::spawn(run(own, cmd_rx, events, stats.clone()));
                Commands::Task(cmd_tx)
            }
            Transport::Port(slot) => {
                let ended = Arc::new(AtomicBool::new(false));
                let (key, tx) = slot.adopt(Adopted {
                    peer,
                    recorder,
                    yield_window,
                    events,
                    stats: stats.clone(),
                    ended: ended.clone(),
                });
                Commands::Port {
                    _release: Arc::new(Release {
                        key,
                        tx: tx.clone(),
                    }),
                    tx,
                    key,
                    ended,
                }
            }
        };
        CallControl { cmd, local, stats }
    }
}

/// A call on its own socket, as its task runs it.
struct OwnCall {
    peer: Peer,
    socket: UdpSocket,
    yield_window: Duration,
    recorder: Option<PcapngRecorder>,
}

/// Where a call's commands go: its own task, or its port's.
#[derive(Clone)]
enum Commands {
    Task(mpsc::UnboundedSender<Command>),
    Port {
        tx: mpsc::UnboundedSender<PortMsg>,
        key: u64,
        ended: Arc<AtomicBool>,
        /// Held for its drop, which ends the call.
        _release: Arc<Release>,
    },
}

impl Commands {
    /// Sends `cmd`; `Err` when the call has ended.
    fn send(&self, cmd: Command) -> Result<(), ()> {
        match self {
            Commands::Task(tx) => tx.send(cmd).map_err(|_| ()),
            Commands::Port { tx, key, ended, .. } => {
                if ended.load(Ordering::Acquire) {
                    return Err(());
                }
                tx.send(PortMsg::Command { key: *key, cmd }).map_err(|_| ())
            }
        }
    }

    /// Whether the call has ended.
    fn is_closed(&self) -> bool {
        match self {
            Commands::Task(tx) => tx.is_closed(),
            Commands::Port { tx, ended, .. } => ended.load(Ordering::Acquire) || tx.is_closed(),
        }
    }
}

/// Ends a port's call when its last handle is dropped, as a call's own task does when its command
/// channel closes.
struct Release {
    key: u64,
    tx: mpsc::UnboundedSender<PortMsg>,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.tx.send(PortMsg::Released { key: self.key });
    }
}

/// A snapshot of a call's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallStats {
    /// UDP datagrams received.
    pub datagrams_in: u64,
    /// UDP datagrams sent.
    pub datagrams_out: u64,
}

/// The application's side of a running call.
#[derive(Debug)]
pub struct CallHandle {
    control: CallControl,
    events: mpsc::UnboundedReceiver<PeerEvent>,
}

/// The command side of a call: cheap to clone, usable from many tasks.
#[derive(Clone)]
pub struct CallControl {
    cmd: Commands,
    local: SocketAddr,
    stats: Arc<Counters>,
}

impl std::fmt::Debug for CallControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallControl")
            .field("local", &self.local)
            .field("ended", &self.is_ended())
            .finish_non_exhaustive()
    }
}

impl CallHandle {
    /// A clonable handle for commands (insert DTMF, close) while another task reads the events.
    pub fn control(&self) -> CallControl {
        self.control.clone()
    }

    /// The next event; `None` once the call has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<PeerEvent> {
        self.events.recv().await
    }
}

impl std::ops::Deref for CallHandle {
    type Target = CallControl;

    /// The commands (`insert_dtmf`, `can_insert_dtmf`, `close`, `stats`) are the control's.
    fn deref(&self) -> &CallControl {
        &self.control
    }
}

impl CallControl {
    /// `insertDTMF` on the call's audio sender.
    pub async fn insert_dtmf(
        &self,
        tones: &str,
        duration_ms: u32,
        gap_ms: u32,
    ) -> Result<(), InsertDtmfError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Insert {
                tones: tones.to_string(),
                duration_ms,
                gap_ms,
                reply,
            })
            .map_err(|()| InsertDtmfError::CallEnded)?;
        Ok(rx.await.map_err(|_| InsertDtmfError::CallEnded)??)
    }

    /// `canInsertDTMF` of the call's audio sender.
    pub async fn can_insert_dtmf(&self) -> bool {
        let (reply, rx) = oneshot::channel();
        if self.cmd.send(Command::CanInsert(reply)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// The call's counters now.
    pub fn stats(&self) -> CallStats {
        CallStats {
            datagrams_in: self.stats.datagrams_in.load(Ordering::Relaxed),
            datagrams_out: self.stats.datagrams_out.load(Ordering::Relaxed),
        }
    }

    /// Hangs up; events up to `Closed` still arrive.
    pub fn close(&self) {
        let _ = self.cmd.send(Command::Close);
    }

    /// Whether the call's task has ended.
    pub fn is_ended(&self) -> bool {
        self.cmd.is_closed()
    }

    /// The call's local UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// How the call waits for its next deadline.
#[derive(Debug, PartialEq, Eq)]
struct WaitPlan {
    /// Sleep on the runtime's timer until then.
    sleep_until: Instant,
    /// Then yield to other tasks until then, if a `tonechange` is near.
    yield_until: Option<Instant>,
}

/// Plans the wait for `deadline`, the earliest of the call's timers, given the next `tonechange`
/// (`playout`). A sleep never runs into the `window` before a `tonechange`, whichever timer is due
/// first: a sleep that ends a tick late must not make the event late.
fn plan_wait(deadline: Instant, playout: Option<Instant>, window: Duration) -> WaitPlan {
    let near = playout.map(|p| (p.checked_sub(window).unwrap_or(p), p));
    match near {
        Some((from, p)) if from < deadline => WaitPlan {
            sleep_until: from,
            yield_until: Some(p.min(deadline)),
        },
        _ => WaitPlan {
            sleep_until: deadline,
            yield_until: None,
        },
    }
}

/// Waits as planned by [`plan_wait`] on the call's one timer `sleep`, which is moved only when the
/// deadline changed: a datagram that leaves the next deadline as it was costs no timer update.
async fn wait_until(
    mut sleep: std::pin::Pin<&mut tokio::time::Sleep>,
    deadline: Instant,
    playout: Option<Instant>,
    window: Duration,
) {
    let plan = plan_wait(deadline, playout, window);
    if plan.sleep_until > Instant::now() {
        let at = tokio::time::Instant::from_std(plan.sleep_until);
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        sleep.await;
    }
    if let Some(end) = plan.yield_until {
        while Instant::now() < end {
            tokio::task::yield_now().await;
        }
    }
}

/// How many queued datagrams one wake-up reads before its timers run.
const DRAIN_LIMIT: usize = 256;

/// The rest of a timer wake-up at `now`, after the due tone changes went out: first every datagram
/// already queued (`recv` yields them without waiting), then the timers. After a stall (a paused process,
/// a descheduled VM) the datagrams that arrived meanwhile thus win over timers that ran out meanwhile, and
/// an event whose packets all arrived is not ended early by the receiver's end timeout. Returns how many
/// datagrams were read.
fn queued_then_timers(
    peer: &mut Peer,
    now: Instant,
    buf: &mut [u8],
    mut recv: impl FnMut(&mut [u8]) -> Option<(usize, SocketAddr)>,
) -> (u64, Result<(), RtcError>) {
    let mut read = 0;
    for _ in 0..DRAIN_LIMIT {
        let Some((n, src)) = recv(buf) else { break };
        read += 1;
        if let Err(e) = peer.handle_receive(now, src, &buf[..n]) {
            tracing::debug!("call {}: {e}", peer.local_addr());
        }
    }
    (read, peer.handle_timeout(now))
}

async fn run(
    call: OwnCall,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    events: EventOut,
    stats: Arc<Counters>,
) {
    // The call reads as ended (its command channel closed) before its event function is dropped,
    // however the task ends: fields drop in the order they are declared.
    struct Ends {
        cmd_rx: mpsc::UnboundedReceiver<Command>,
        events: EventOut,
    }
    let mut ends = Ends { cmd_rx, events };
    let OwnCall {
        mut peer,
        socket,
        yield_window,
        mut recorder,
    } = call;
    let mut buf = vec![0u8; 2048];
    let mut commands_open = true;
    let socket_local = socket.local_addr().ok();
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    loop {
        // Events first: the application hears of a tone change before the datagrams go out.
        pass_on(&mut peer, &mut ends.events, &mut recorder);
        while let Some(Transmit {
            destination: dst,
            contents: data,
        }) = peer.poll_transmit()
        {
            let dst = match socket_local {
                Some(local) => for_socket(local, dst),
                None => dst,
            };
            match socket.send_to(&data, dst).await {
                Ok(_) => {
                    stats.datagrams_out.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!("send to {dst}: {e}"),
            }
        }
        if peer.is_closed() {
            break;
        }
        let now = Instant::now();
        let deadline = peer
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(3600));
        let result = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, src)) => {
                    stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                    peer.handle_receive(Instant::now(), src, &buf[..n])
                }
                Err(e) => {
                    tracing::debug!("receive: {e}");
                    Ok(())
                }
            },
            _ = wait_until(sleep.as_mut(), deadline.max(now), peer.next_playout(), yield_window) => {
                let now = Instant::now();
                // Tone changes first, before str0m's timers and the packets' encryption.
                peer.run_playout(now);
                pass_on(&mut peer, &mut ends.events, &mut recorder);
                let (read, result) = queued_then_timers(&mut peer, Instant::now(), &mut buf, |b| {
                    recv_queued(&socket, b)
                });
                stats.datagrams_in.fetch_add(read, Ordering::Relaxed);
                result
            }
            cmd = ends.cmd_rx.recv(), if commands_open => {
                let now = Instant::now();
                match cmd {
                    Some(cmd) => cmd.apply(&mut peer, now),
                    None => {
                        commands_open = false;
                        peer.close(now);
                    }
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!("call {}: {e}", peer.local_addr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DigitInfo;
    use std::collections::VecDeque;

    /// Two peers connected in memory with a simulated clock; returns them and the time.
    fn connected_pair() -> (Peer, Peer, Instant) {
        let mut now = Instant::now();
        let (a_addr, b_addr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let mut a = Peer::new(now, a_addr, PeerConfig::default()).unwrap();
        let mut b = Peer::new(now, b_addr, PeerConfig::default()).unwrap();
        let offer = a.create_offer().unwrap();
        let answer = b.accept_offer(now, &offer).unwrap();
        a.accept_answer(now, &answer).unwrap();
        while !(a.is_connected() && b.is_connected() && a.can_insert_dtmf()) {
            let mut moved = false;
            while let Some(Transmit { contents: d, .. }) = a.poll_transmit() {
                b.handle_receive(now, a_addr, &d).unwrap();
                moved = true;
            }
            while let Some(Transmit { contents: d, .. }) = b.poll_transmit() {
                a.handle_receive(now, b_addr, &d).unwrap();
                moved = true;
            }
            if !moved {
                now = now.max(a.poll_timeout().unwrap().min(b.poll_timeout().unwrap()));
                a.handle_timeout(now).unwrap();
                b.handle_timeout(now).unwrap();
            }
        }
        (a, b, now)
    }

    fn key_ups(p: &mut Peer) -> Vec<DigitInfo> {
        std::iter::from_fn(|| p.poll_event())
            .filter_map(|e| match e {
                PeerEvent::KeyUp(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn packets_queued_during_a_stall_win_over_the_end_timeout() {
        // a dials a 100 ms tone; b's process stalls for 400 ms from 50 ms into it: its packets queue up
        // in b's socket while the 250 ms end timeout passes.
        let (mut a, mut b, mut now) = connected_pair();
        let a_addr = a.local_addr();
        let _ = key_ups(&mut b);
        a.insert_dtmf(now, "5", 100, 70).unwrap();
        let start = now;
        let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
        let stall = (start + ms(50), start + ms(450));
        while now < start + ms(600) {
            // The next instant something is due on either side (a jumps there; b only while awake).
            let awake = now < stall.0 || now >= stall.1;
            let b_next = b.poll_timeout().filter(|_| awake);
            let next = [a.poll_timeout(), b_next]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            now = next.max(now).min(start + ms(600));
            a.handle_timeout(now).unwrap();
            while let Some(Transmit { contents: d, .. }) = a.poll_transmit() {
                queue.push_back(d);
            }
            if now < stall.0 || now >= stall.1 {
                // b is awake: one wake-up reads what is queued, then runs its timers.
                let mut buf = vec![0u8; 2048];
                let (_, r) = queued_then_timers(&mut b, now, &mut buf, |out| {
                    let d = queue.pop_front()?;
                    out[..d.len()].copy_from_slice(&d);
                    Some((d.len(), a_addr))
                });
                r.unwrap();
                while b.poll_transmit().is_some() {}
            }
        }
        let got = key_ups(&mut b);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].tone, Some('5'));
        assert_eq!(got[0].duration, ms(100));
    }

    #[test]
    fn junk_does_not_keep_an_idle_call_alive() {
        let now = Instant::now();
        let mut p = Peer::new(now, "127.0.0.1:3".parse().unwrap(), PeerConfig::default()).unwrap();
        p.set_idle_timeout(Some(Duration::from_secs(2)));
        let junk: SocketAddr = "127.0.0.1:4".parse().unwrap();
        let mut t = now;
        while !p.is_closed() && t < now + Duration::from_secs(10) {
            t += ms(200);
            // Not STUN, DTLS or RTP of this call: an RTP-looking packet and random bytes.
            p.handle_receive(t, junk, &[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9])
                .unwrap();
            p.handle_receive(t, junk, b"hello").unwrap();
            p.handle_timeout(t).unwrap();
        }
        assert!(p.is_closed(), "still open at {:?}", t - now);
        assert!(t - now <= Duration::from_secs(2) + ms(200), "{:?}", t - now);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn without_a_tonechange_the_call_sleeps_until_its_deadline() {
        let t = Instant::now();
        let plan = plan_wait(t + ms(20), None, DEFAULT_YIELD_WINDOW);
        assert_eq!(plan.sleep_until, t + ms(20));
        assert_eq!(plan.yield_until, None);
    }

    #[test]
    fn a_tonechange_well_after_the_deadline_leaves_the_sleep_alone() {
        let t = Instant::now();
        let plan = plan_wait(t + ms(20), Some(t + ms(30)), DEFAULT_YIELD_WINDOW);
        assert_eq!(plan.sleep_until, t + ms(20));
        assert_eq!(plan.yield_until, None);
    }

    #[test]
    fn the_tonechange_itself_is_reached_by_yielding() {
        let t = Instant::now();
        let plan = plan_wait(t + ms(70), Some(t + ms(70)), DEFAULT_YIELD_WINDOW);
        assert_eq!(plan.sleep_until, t + ms(70) - DEFAULT_YIELD_WINDOW);
        assert_eq!(plan.yield_until, Some(t + ms(70)));
    }

    #[test]
    fn another_timer_just_before_a_tonechange_does_not_sleep_into_it() {
        // An audio frame due 500 us before a tone starts: a millisecond-tick sleep until the frame
        // could end after the tone's time.
        let t = Instant::now();
        let tone = t + ms(70);
        let frame = tone - Duration::from_micros(500);
        let plan = plan_wait(frame, Some(tone), DEFAULT_YIELD_WINDOW);
        assert_eq!(plan.sleep_until, tone - DEFAULT_YIELD_WINDOW);
        assert_eq!(plan.yield_until, Some(frame));
    }

    #[test]
    fn a_zero_window_sleeps_right_up_to_the_tonechange() {
        let t = Instant::now();
        let plan = plan_wait(t + ms(100), Some(t + ms(70)), Duration::ZERO);
        assert_eq!(plan.sleep_until, t + ms(70));
        assert_eq!(plan.yield_until, Some(t + ms(70)));
    }

    #[test]
    fn a_tonechange_before_the_deadline_ends_the_wait_at_the_tonechange() {
        let t = Instant::now();
        let plan = plan_wait(t + ms(100), Some(t + ms(70)), DEFAULT_YIELD_WINDOW);
        assert_eq!(plan.sleep_until, t + ms(70) - DEFAULT_YIELD_WINDOW);
        assert_eq!(plan.yield_until, Some(t + ms(70)));
    }
}
