//! A task that runs a share of a port's calls: it reads its socket on the port, hands each datagram to
//! its call's [`Peer`] in place, runs the calls' timers in deadline order and sends what they produce.
//! No task, channel or copy per datagram; per wake-up the same order as a call on its own socket:
//! tone changes first, then every datagram already queued, then the timers.
//!
//! A call starts at the task its ufrag hashes to ([`owner`]). The kernel picks the socket by the
//! remote address, so a task may read a datagram of another task's call: a STUN check tells the owner
//! by its ufrag, the port's [`Owners`] remember the address, and the datagrams from that address are
//! handed over to the owner. The first datagram handed over moves the call to the task whose socket
//! its remote address reaches (once per call), so that its datagrams come straight to it from then on
//! and never wait behind another task's backlog.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::PortCounters;
use super::routes::{Routes, stun_local_ufrag};
use crate::control::{Command, Counters, EventOut, pass_on};
use crate::peer::{Peer, Transmit};
use crate::record::PcapngRecorder;
use crate::udp::{canonical, for_socket, recv_queued};

/// Datagrams kept for a call that has its routes but is not running yet (its answer is on its way).
const WAITING_LIMIT: usize = 64;

/// Datagrams kept for calls on their way to this task from another (see [`PortMsg::Move`]).
const ARRIVING_LIMIT: usize = 256;

/// How long such a datagram is kept for its call.
const ARRIVING_TTL: Duration = Duration::from_secs(1);

/// Datagrams one turn reads before it runs the timers; the next turn follows at once.
const DRAIN_LIMIT: usize = 1024;

/// The socket buffers asked for, so that a busy moment of the process does not drop datagrams: at 1,000
/// calls on 2 cores, 4 MiB still dropped a few thousand per 30 s, 16 MiB none (BENCHMARKS.md). The
/// kernel caps it at `net.core.rmem_max`.
const SOCKET_BUFFER: usize = 16 << 20;

/// How late a timer must run for its task to read the port's other sockets too before the timers: after
/// a stall (a paused process), datagrams for its calls may wait there, and must win over the timeouts
/// that ran out meanwhile.
const STALL: Duration = Duration::from_millis(50);

/// How long the port remembers which task runs the call of a remote address that sent no STUN check
/// (ICE consent checks come every few seconds while a call lives).
const OWNER_TTL: Duration = Duration::from_secs(60);

/// What a call's handle and its port tell the port's task.
pub(crate) enum PortMsg {
    /// A datagram another task read for a call of this one, from the socket of task `home`.
    Datagram {
        src: SocketAddr,
        data: Vec<u8>,
        home: usize,
    },
    /// A running call moved here from another task, with the remote addresses that reach it.
    Move {
        key: u64,
        ufrag: String,
        addrs: Vec<SocketAddr>,
        live: Box<Live>,
    },
    /// A call that STUN checks for `ufrag` reach, before it runs.
    Register { key: u64, ufrag: String },
    /// A registered call dropped before it ran.
    Unregister { key: u64 },
    /// A registered call that runs from now on.
    Adopt { key: u64, call: Box<Adopted> },
    /// A command from the application.
    Command { key: u64, cmd: Command },
    /// Every handle of the call is gone: it ends.
    Released { key: u64 },
    /// The endpoint is gone: every call ends.
    Shutdown,
}

/// A call the port's task runs: its peer and where its events and counters go.
pub(crate) struct Adopted {
    pub(crate) peer: Peer,
    pub(crate) recorder: Option<PcapngRecorder>,
    pub(crate) yield_window: Duration,
    pub(crate) events: EventOut,
    pub(crate) stats: Arc<Counters>,
    pub(crate) ended: Arc<AtomicBool>,
}

/// A call at the port: registered and waiting to run, or running.
enum Slot {
    Waiting(Vec<(SocketAddr, Vec<u8>)>),
    Live(Box<Live>),
}

/// A running call and its place in the port's timers.
pub(crate) struct Live {
    call: Adopted,
    /// Its entry in the timer set.
    timer: Option<Instant>,
    /// Its entry in the set of windows before tone changes.
    window: Option<Instant>,
    /// Whether it is in the list of calls to flush.
    dirty: bool,
    /// Whether it has moved from the task it started at (a call moves once).
    moved: bool,
}

impl Live {
    /// When the port must run this call next: its earliest timer or `tonechange`.
    fn wake_at(&self) -> Option<Instant> {
        let p = &self.call.peer;
        [p.poll_timeout(), p.next_playout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// From when the port stays awake (yields instead of sleeping) for the call's next `tonechange`:
    /// the runtime's timer wakes up to a tick late (see
    /// [`DEFAULT_YIELD_WINDOW`](crate::call::DEFAULT_YIELD_WINDOW)).
    fn window_from(&self) -> Option<Instant> {
        let t = self.call.peer.next_playout()?;
        Some(t.checked_sub(self.call.yield_window).unwrap_or(t))
    }
}

/// Moves call `key`'s entry in `set` from `old` to `new`.
fn refile(
    set: &mut BTreeSet<(Instant, u64)>,
    key: u64,
    old: &mut Option<Instant>,
    new: Option<Instant>,
) {
    if *old != new {
        if let Some(at) = *old {
            set.remove(&(at, key));
        }
        if let Some(at) = new {
            set.insert((at, key));
        }
        *old = new;
    }
}

/// Puts call `key` on the list to flush once.
fn mark(dirty: &mut Vec<u64>, key: u64, live: &mut Live) {
    if !live.dirty {
        live.dirty = true;
        dirty.push(key);
    }
}

/// Which task this is among the port's tasks, and the way to the others.
pub(super) struct Share {
    pub(super) index: usize,
    pub(super) peers: Vec<mpsc::WeakUnboundedSender<PortMsg>>,
    /// Every task's socket, by index.
    pub(super) sockets: Arc<Vec<UdpSocket>>,
    /// Which task runs the call of each remote address, as STUN checks told.
    pub(super) owners: Arc<Owners>,
}

/// The task that runs the call of each remote address, learned from STUN checks, for every task of the
/// port: whichever socket a datagram arrives at, it goes straight to its call's task.
#[derive(Default)]
pub(super) struct Owners {
    inner: std::sync::RwLock<OwnersInner>,
}

#[derive(Default)]
struct OwnersInner {
    by_addr: HashMap<SocketAddr, (usize, Instant)>,
    /// The ufrags of the port's calls and the task running each: a check for another ufrag teaches
    /// nothing.
    ufrags: HashMap<String, usize>,
    swept: Option<Instant>,
}

impl Owners {
    /// A call with this ufrag is on the port from now on, run by task `task`.
    pub(super) fn add_ufrag(&self, ufrag: &str, task: usize) {
        let mut o = self.inner.write().unwrap_or_else(|e| e.into_inner());
        o.ufrags.insert(ufrag.to_string(), task);
    }

    /// The call with this ufrag, reached from `addrs`, is run by task `task` from now on.
    fn moved(&self, ufrag: &str, addrs: &[SocketAddr], task: usize, now: Instant) {
        let mut o = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = o.ufrags.get_mut(ufrag) {
            *t = task;
        }
        for a in addrs {
            o.by_addr.insert(*a, (task, now));
        }
    }

    /// The call with this ufrag, reached from `addrs`, has left the port.
    fn remove_call(&self, ufrag: &str, addrs: &[SocketAddr]) {
        let mut o = self.inner.write().unwrap_or_else(|e| e.into_inner());
        o.ufrags.remove(ufrag);
        for a in addrs {
            o.by_addr.remove(a);
        }
    }

    /// For a STUN check from `src` for a call of the port with `ufrag`: records that `src`'s
    /// datagrams are for the task running that call, heard at `now`, and returns the task. A check for
    /// an unknown ufrag changes nothing (`None`). Forgets addresses not heard of for [`OWNER_TTL`].
    fn learn(&self, src: SocketAddr, ufrag: &str, now: Instant) -> Option<usize> {
        let mut o = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let task = *o.ufrags.get(ufrag)?;
        o.by_addr.insert(src, (task, now));
        if o.swept.is_none_or(|t| now >= t + OWNER_TTL) {
            o.swept = Some(now);
            o.by_addr.retain(|_, (_, seen)| now < *seen + OWNER_TTL);
        }
        Some(task)
    }

    /// The task that runs the call of `src`'s datagrams, if known.
    fn get(&self, src: SocketAddr) -> Option<usize> {
        let o = self.inner.read().unwrap_or_else(|e| e.into_inner());
        o.by_addr.get(&src).map(|(task, _)| *task)
    }
}

/// The task of `n` that runs the call with local ufrag `ufrag` (FNV-1a).
pub(super) fn owner(ufrag: &str, n: usize) -> usize {
    let h = ufrag.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % n.max(1) as u64) as usize
}

/// A non-blocking UDP socket on `addr` that other sockets of this process may share
/// (`SO_REUSEPORT`), with large buffers.
pub(super) fn bind_reuse_port(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    size_buffers(&s);
    Ok(s.into())
}

struct Driver {
    share: Share,
    rx: mpsc::UnboundedReceiver<PortMsg>,
    /// Whether `rx` may still bring messages.
    open: bool,
    local: SocketAddr,
    counters: Arc<PortCounters>,
    routes: Routes<Slot>,
    timers: BTreeSet<(Instant, u64)>,
    /// The windows before the calls' next tone changes, by their start.
    windows: BTreeSet<(Instant, u64)>,
    dirty: Vec<u64>,
    due: Vec<u64>,
    out: Vec<Transmit>,
    buf: Vec<u8>,
    shutdown: bool,
    /// The last drain stopped at its limit: more datagrams wait.
    more: bool,
    /// The last turn read datagrams: the task is busy, and does not spin before tone changes.
    busy: bool,
    /// Calls that moved from here to another task, by key: their commands follow them.
    moved: HashMap<u64, usize>,
    /// Calls to move at the end of the turn, and where.
    to_move: Vec<(u64, usize)>,
    /// Datagrams from addresses the book gives to this task whose call has not arrived yet (it is moving
    /// here), with when they came.
    arriving: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
}

/// Asks for large socket buffers (see [`SOCKET_BUFFER`]).
fn size_buffers(s: &socket2::Socket) {
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    if let Ok(n) = s.recv_buffer_size()
        && n < SOCKET_BUFFER
    {
        tracing::debug!(
            "shared UDP port: receive buffer {n} bytes (raise net.core.rmem_max for {SOCKET_BUFFER})"
        );
    }
}

/// Runs the port until the endpoint and every call on it are gone.
pub(super) async fn run(
    share: Share,
    local: SocketAddr,
    rx: mpsc::UnboundedReceiver<PortMsg>,
    counters: Arc<PortCounters>,
) {
    let sockets = share.sockets.clone();
    let socket = &sockets[share.index];
    let mut d = Driver {
        share,
        rx,
        open: true,
        local,
        counters,
        routes: Routes::default(),
        timers: BTreeSet::new(),
        windows: BTreeSet::new(),
        dirty: Vec::new(),
        due: Vec::new(),
        out: Vec::new(),
        buf: vec![0u8; 2048],
        shutdown: false,
        more: false,
        busy: false,
        moved: HashMap::new(),
        to_move: Vec::new(),
        arriving: VecDeque::new(),
    };
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    loop {
        d.take_messages();
        if d.finished() {
            return;
        }
        d.turn().await;
        if d.finished() {
            return;
        }
        let now = Instant::now();
        let first = |set: &BTreeSet<(Instant, u64)>| set.first().map(|(at, _)| *at);
        let Some(at) = sleep_until(now, first(&d.timers), first(&d.windows), d.busy, d.more) else {
            tokio::task::yield_now().await;
            continue;
        };
        let at = tokio::time::Instant::from_std(at);
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        tokio::select! {
            _ = sleep.as_mut() => {}
            r = socket.readable() => {
                if let Err(e) = r {
                    tracing::debug!("shared UDP port: {e}");
                }
            }
            m = d.rx.recv(), if d.open => match m {
                Some(m) => d.on_msg(m),
                None => d.open = false,
            },
        }
    }
}

/// Until when a task may sleep, or `None` to stay awake (yield): while more datagrams wait or a timer is
/// due, and, if it is not `busy`, from the start of the window before a tone change, so that the change
/// is not a timer tick late. A busy task (its last turn read datagrams) does not spin there: the spin
/// costs more than the tick (at 1,000 calls on 2 cores it made the sockets overflow). With nothing
/// scheduled it sleeps an hour, or until a datagram or message comes.
fn sleep_until(
    now: Instant,
    next_timer: Option<Instant>,
    next_window: Option<Instant>,
    busy: bool,
    more: bool,
) -> Option<Instant> {
    let spin_from = if busy { None } else { next_window };
    let next = [next_timer, spin_from].into_iter().flatten().min();
    match next {
        _ if more => None,
        Some(at) if at <= now => None,
        Some(at) => Some(at),
        None => Some(now + Duration::from_secs(3600)),
    }
}

impl Driver {
    /// Whether the task is done: the endpoint is gone (or nothing can reach the task) and so are its calls.
    fn finished(&self) -> bool {
        (!self.open || self.shutdown) && self.routes.len() == 0
    }

    /// One round: due tone changes, then the queued datagrams, then the due timers; then every call
    /// touched sends what it has.
    async fn turn(&mut self) {
        let now = Instant::now();
        self.due.clear();
        let mut late = false;
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            late |= now - at > STALL;
            self.timers.pop_first();
            self.due.push(key);
        }
        // Tone changes first, before the datagrams and str0m's timers.
        for &key in &self.due {
            if let Some(Slot::Live(l)) = self.routes.get_mut(key) {
                l.timer = None;
                l.call.peer.run_playout(now);
                pass_on(&mut l.call.peer, &mut l.call.events, &mut l.call.recorder);
                mark(&mut self.dirty, key, l);
            }
        }
        self.drain();
        if late {
            self.counters.stalls.fetch_add(1, Ordering::Relaxed);
            self.drain_others();
        }
        // Datagrams handed over by the other tasks too.
        self.take_messages();
        let now = Instant::now();
        for &key in &self.due {
            if let Some(Slot::Live(l)) = self.routes.get_mut(key)
                && l.call.peer.poll_timeout().is_some_and(|t| t <= now)
                && let Err(e) = l.call.peer.handle_timeout(now)
            {
                tracing::warn!("call {}: {e}", l.call.peer.local_addr());
            }
        }
        self.flush().await;
        self.move_calls();
    }

    /// Handles the messages waiting in the task's channel.
    fn take_messages(&mut self) {
        while self.open {
            match self.rx.try_recv() {
                Ok(m) => self.on_msg(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.open = false,
            }
        }
    }

    /// Reads what waits in the other tasks' sockets, each datagram to its call's task as if read there.
    fn drain_others(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        let sockets = self.share.sockets.clone();
        let now = Instant::now();
        for (home, socket) in sockets.iter().enumerate() {
            if home == self.share.index {
                continue;
            }
            let mut read = 0;
            for _ in 0..DRAIN_LIMIT {
                let Some((n, src)) = recv_queued(socket, &mut buf) else {
                    break;
                };
                read += 1;
                self.receive(now, canonical(src), &buf[..n], home);
            }
            self.counters.datagrams.fetch_add(read, Ordering::Relaxed);
        }
        self.buf = buf;
    }

    /// Sends a moved call's command on to task `to`, which runs it now.
    fn forward(&self, to: usize, msg: PortMsg) {
        if let Some(tx) = self.share.peers[to].upgrade() {
            let _ = tx.send(msg);
        }
    }

    /// Sends a datagram to task `to`.
    fn hand_over(&self, to: usize, msg: PortMsg) {
        let sent = self.share.peers[to]
            .upgrade()
            .is_some_and(|tx| tx.send(msg).is_ok());
        let counter = match sent {
            true => &self.counters.handed_over,
            false => &self.counters.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads every datagram queued in the socket (up to [`DRAIN_LIMIT`]) into its call.
    fn drain(&mut self) {
        let sockets = self.share.sockets.clone();
        let socket = &sockets[self.share.index];
        // Clear the runtime's readiness before reading: a datagram that arrives after this sets it
        // again, so the task never sleeps with one waiting.
        let _ = socket.try_io(Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
        let mut buf = std::mem::take(&mut self.buf);
        let mut now = Instant::now();
        self.more = true;
        let mut read = 0;
        for i in 0..DRAIN_LIMIT {
            let Some((n, src)) = recv_queued(socket, &mut buf) else {
                self.more = false;
                break;
            };
            if i % 64 == 63 {
                now = Instant::now();
            }
            read += 1;
            self.receive(now, canonical(src), &buf[..n], self.share.index);
        }
        // One update of the port-wide counter per turn, not one per datagram.
        self.counters.datagrams.fetch_add(read, Ordering::Relaxed);
        self.busy = read > 0;
        self.buf = buf;
    }

    /// Hands a datagram read on the socket of task `home` to its call, here or at the task that runs it.
    fn receive(&mut self, now: Instant, src: SocketAddr, data: &[u8], home: usize) {
        let n = self.share.peers.len();
        if n > 1 && !self.routes.knows(src) {
            // A STUN check names its call; anything else goes where its address's checks went. An
            // address the port's book has forgotten (its checks all reach the task that runs its call,
            // which needs no book) goes to the task whose socket it came to.
            let to = match stun_local_ufrag(data) {
                Some(ufrag) => self.share.owners.learn(src, ufrag, now),
                None => self.share.owners.get(src).or(Some(home)),
            };
            if let Some(to) = to.filter(|to| *to != self.share.index) {
                let data = data.to_vec();
                self.hand_over(to, PortMsg::Datagram { src, data, home });
                return;
            }
        }
        self.deliver(now, src, data);
    }

    /// Hands a datagram to this task's call it is for, if any; returns the call's key when it runs.
    fn deliver(&mut self, now: Instant, src: SocketAddr, data: &[u8]) -> Option<u64> {
        match self.routes.route(src, data) {
            None if self.share.peers.len() > 1
                && self.share.owners.get(src) == Some(self.share.index) =>
            {
                // Its call is on its way here from another task: kept until it arrives.
                while self
                    .arriving
                    .front()
                    .is_some_and(|(at, ..)| now >= *at + ARRIVING_TTL)
                {
                    self.arriving.pop_front();
                }
                if self.arriving.len() < ARRIVING_LIMIT {
                    self.arriving.push_back((now, src, data.to_vec()));
                } else {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            None => {
                self.counters.unroutable.fetch_add(1, Ordering::Relaxed);
                None
            }
            Some((_, Slot::Waiting(q))) => {
                if q.len() < WAITING_LIMIT {
                    q.push((src, data.to_vec()));
                } else {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            Some((key, Slot::Live(l))) => {
                l.call.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = l.call.peer.handle_receive(now, src, data) {
                    tracing::debug!("call {}: {e}", l.call.peer.local_addr());
                }
                mark(&mut self.dirty, key, l);
                Some(key)
            }
        }
    }

    /// Moves the calls chosen this turn to the tasks whose sockets their datagrams reach.
    fn move_calls(&mut self) {
        let now = Instant::now();
        for (key, to) in std::mem::take(&mut self.to_move) {
            let Some(Slot::Live(l)) = self.routes.get_mut(key) else {
                continue;
            };
            if l.moved || l.dirty || l.call.peer.is_closed() {
                continue; // Moves once; one with work left is flushed first (and not moved).
            }
            let Some(tx) = self.share.peers[to].upgrade() else {
                continue;
            };
            refile(&mut self.timers, key, &mut l.timer, None);
            refile(&mut self.windows, key, &mut l.window, None);
            let Some((ufrag, addrs, Slot::Live(mut live))) = self.routes.take(key) else {
                continue;
            };
            live.moved = true;
            self.share.owners.moved(&ufrag, &addrs, to, now);
            let msg = PortMsg::Move {
                key,
                ufrag,
                addrs,
                live,
            };
            let Err(mpsc::error::SendError(msg)) = tx.send(msg) else {
                self.moved.insert(key, to);
                self.counters.moved.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            // The other task has stopped: the call stays (`send` hands back the message it was given).
            if let PortMsg::Move {
                key,
                ufrag,
                addrs,
                mut live,
            } = msg
            {
                self.share
                    .owners
                    .moved(&ufrag, &addrs, self.share.index, now);
                live.moved = false;
                mark(&mut self.dirty, key, &mut live);
                self.routes.insert_with(key, ufrag, addrs, Slot::Live(live));
            }
        }
    }

    /// Delivers the events, records and datagrams of every call touched since the last flush, ends
    /// the calls that closed and files the others' next wake-up.
    async fn flush(&mut self) {
        let keys = std::mem::take(&mut self.dirty);
        for &key in &keys {
            let Some(Slot::Live(l)) = self.routes.get_mut(key) else {
                continue;
            };
            l.dirty = false;
            let call = &mut l.call;
            // Events first: the application hears of a tone change before the datagrams go out.
            pass_on(&mut call.peer, &mut call.events, &mut call.recorder);
            while let Some(t) = call.peer.poll_transmit() {
                call.stats.datagrams_out.fetch_add(1, Ordering::Relaxed);
                self.out.push(t);
            }
            if call.peer.is_closed() {
                refile(&mut self.timers, key, &mut l.timer, None);
                refile(&mut self.windows, key, &mut l.window, None);
                if let Some((ufrag, addrs, Slot::Live(l))) = self.routes.take(key) {
                    self.share.owners.remove_call(&ufrag, &addrs);
                    l.call.ended.store(true, Ordering::Release);
                }
                self.counters.calls.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            let (next, window) = (l.wake_at(), l.window_from());
            refile(&mut self.timers, key, &mut l.timer, next);
            refile(&mut self.windows, key, &mut l.window, window);
        }
        self.dirty = keys;
        self.dirty.clear();
        self.send().await;
    }

    /// Sends the datagrams the calls produced.
    async fn send(&mut self) {
        let socket = &self.share.sockets[self.share.index];
        let sock = socket2::SockRef::from(socket);
        for t in self.out.drain(..) {
            let dst = for_socket(self.local, t.destination);
            let sent = match sock.send_to(&t.contents, &dst.into()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    socket.send_to(&t.contents, dst).await
                }
                r => r,
            };
            if let Err(e) = sent {
                tracing::debug!("send to {dst}: {e}");
            }
        }
    }

    fn on_msg(&mut self, m: PortMsg) {
        let now = Instant::now();
        match m {
            PortMsg::Datagram { src, data, home } => {
                let here = self.share.index;
                if !self.routes.knows(src)
                    && let Some(to) = self.share.owners.get(src).filter(|t| *t != here)
                {
                    // Its call has moved on meanwhile.
                    self.hand_over(to, PortMsg::Datagram { src, data, home });
                    return;
                }
                if let Some(key) = self.deliver(now, src, &data)
                    && home != here
                {
                    self.to_move.push((key, home));
                }
            }
            PortMsg::Move {
                key,
                ufrag,
                addrs,
                mut live,
            } => {
                if self.shutdown {
                    tracing::info!(
                        "call {}: its UDP port closed; ending it",
                        live.call.peer.local_addr()
                    );
                    live.call.peer.close(now);
                }
                let reached: Vec<SocketAddr> = addrs.clone();
                self.routes.insert_with(key, ufrag, addrs, Slot::Live(live));
                if let Some(Slot::Live(l)) = self.routes.get_mut(key) {
                    mark(&mut self.dirty, key, l);
                }
                // What came for it before it did.
                let (theirs, others): (VecDeque<_>, VecDeque<_>) =
                    std::mem::take(&mut self.arriving)
                        .into_iter()
                        .partition(|(_, src, _)| reached.contains(src));
                self.arriving = others;
                for (_, src, data) in theirs {
                    self.deliver(now, src, &data);
                }
            }
            PortMsg::Register { key, ufrag } => {
                self.routes.insert(key, ufrag, Slot::Waiting(Vec::new()));
            }
            PortMsg::Unregister { key } => {
                if let Some((ufrag, addrs, _)) = self.routes.take(key) {
                    self.share.owners.remove_call(&ufrag, &addrs);
                    self.counters.calls.fetch_sub(1, Ordering::Relaxed);
                }
            }
            PortMsg::Adopt { key, call } => {
                // Only a registered call that has not run yet can be adopted (a slot adopts once).
                let Some(slot) = self.routes.get_mut(key) else {
                    call.ended.store(true, Ordering::Release);
                    return;
                };
                let Slot::Waiting(waiting) = slot else {
                    call.ended.store(true, Ordering::Release);
                    return;
                };
                let waiting = std::mem::take(waiting);
                let mut live = Box::new(Live {
                    call: *call,
                    timer: None,
                    window: None,
                    dirty: false,
                    moved: false,
                });
                let peer = &mut live.call.peer;
                for (src, data) in waiting {
                    live.call.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = peer.handle_receive(now, src, &data) {
                        tracing::debug!("call {}: {e}", peer.local_addr());
                    }
                }
                if self.shutdown {
                    tracing::info!("call {}: its UDP port closed; ending it", peer.local_addr());
                    peer.close(now);
                }
                mark(&mut self.dirty, key, &mut live);
                *slot = Slot::Live(live);
            }
            PortMsg::Command { key, cmd } => {
                if let Some(&to) = self.moved.get(&key) {
                    self.forward(to, PortMsg::Command { key, cmd });
                    return;
                }
                let Some(Slot::Live(l)) = self.routes.get_mut(key) else {
                    return; // Ended: the reply channel drops, the caller hears so.
                };
                cmd.apply(&mut l.call.peer, now);
                mark(&mut self.dirty, key, l);
            }
            PortMsg::Released { key } => {
                if let Some(to) = self.moved.remove(&key) {
                    self.forward(to, PortMsg::Released { key });
                    return;
                }
                if let Some(Slot::Live(l)) = self.routes.get_mut(key) {
                    l.call.peer.close(now);
                    mark(&mut self.dirty, key, l);
                }
            }
            PortMsg::Shutdown => {
                self.shutdown = true;
                for (key, slot) in self.routes.iter_mut() {
                    if let Slot::Live(l) = slot {
                        tracing::info!(
                            "call {}: its UDP port closed; ending it",
                            l.call.peer.local_addr()
                        );
                        l.call.peer.close(now);
                        mark(&mut self.dirty, key, l);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_book_forgets_what_no_check_renewed() {
        let owners = Owners::default();
        let t0 = Instant::now();
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:5000".parse().unwrap(),
            "10.0.0.2:5000".parse().unwrap(),
        );
        let (ua, ub) = ("ua", "ub");
        let (ta, tb) = (owner(ua, 4), owner(ub, 4));
        owners.add_ufrag(ua, ta);
        owners.add_ufrag(ub, tb);
        assert_eq!(owners.learn(a, ua, t0), Some(ta));
        assert_eq!(owners.learn(b, ub, t0), Some(tb));
        assert_eq!(owners.get(a), Some(ta));
        assert_eq!(owners.get(b), Some(tb));
        // `a` keeps sending checks, `b` does not: past the TTL only `a` is left.
        owners.learn(a, ua, t0 + OWNER_TTL);
        assert_eq!(owners.get(a), Some(ta));
        assert_eq!(owners.get(b), None);
    }

    #[test]
    fn a_moved_call_is_found_at_its_new_task() {
        let owners = Owners::default();
        let now = Instant::now();
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:5000".parse().unwrap(),
            "10.0.0.1:5002".parse().unwrap(),
        );
        owners.add_ufrag("u", 0);
        assert_eq!(owners.learn(a, "u", now), Some(0));
        owners.moved("u", &[a], 3, now);
        assert_eq!(owners.get(a), Some(3), "its known address");
        assert_eq!(
            owners.learn(b, "u", now),
            Some(3),
            "a check from a new address"
        );
        assert_eq!(owners.get(b), Some(3));
        // Moving a call that has left teaches nothing about its ufrag.
        owners.remove_call("u", &[a, b]);
        assert_eq!(owners.get(a), None, "its addresses go with it");
        owners.moved("u", &[], 1, now);
        assert_eq!(owners.learn(b, "u", now), None);
    }

    #[test]
    fn checks_for_unknown_ufrags_teach_the_book_nothing() {
        let owners = Owners::default();
        let now = Instant::now();
        for p in 0..1000u16 {
            let spoofed = SocketAddr::new([10, 9, 8, 7].into(), p);
            assert_eq!(owners.learn(spoofed, "nobody", now), None);
        }
        assert_eq!(owners.inner.read().unwrap().by_addr.len(), 0);
        owners.add_ufrag("gone", 1);
        owners.remove_call("gone", &[]);
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert_eq!(owners.learn(a, "gone", now), None, "its call has left");
    }

    #[test]
    fn an_idle_task_stays_awake_through_the_window_before_a_tone_change() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Next timer (the tone change itself) in 1.5 ms, its window began 0.5 ms ago.
        let (timer, window) = (Some(now + ms(1) + ms(1) / 2), Some(now - ms(1) / 2));
        assert_eq!(sleep_until(now, timer, window, false, false), None);
        // Busy: it sleeps until the timer (a tick late at worst) instead.
        assert_eq!(sleep_until(now, timer, window, true, false), timer);
        // Before the window, idle or not, it sleeps until the window starts or the timer is due.
        let later = Some(now + ms(5));
        assert_eq!(
            sleep_until(now, Some(now + ms(9)), later, false, false),
            later
        );
        assert_eq!(
            sleep_until(now, Some(now + ms(9)), later, true, false),
            Some(now + ms(9))
        );
    }

    #[test]
    fn a_task_with_work_waiting_never_sleeps() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(
            sleep_until(now, Some(now + ms(9)), None, true, true),
            None,
            "more queued"
        );
        assert_eq!(
            sleep_until(now, Some(now), None, true, false),
            None,
            "a timer due"
        );
        assert_eq!(
            sleep_until(now, None, None, false, false),
            Some(now + Duration::from_secs(3600)),
            "nothing scheduled"
        );
    }

    #[test]
    fn calls_spread_over_the_tasks_by_ufrag() {
        let mut per_task = [0usize; 4];
        for i in 0..4000 {
            per_task[owner(&format!("u{i:07x}"), 4)] += 1;
        }
        assert!(
            per_task.iter().all(|n| (800..1200).contains(n)),
            "{per_task:?}"
        );
        assert_eq!(owner("anything", 1), 0);
        assert_eq!(owner("anything", 0), 0, "no tasks is treated as one");
    }
}
