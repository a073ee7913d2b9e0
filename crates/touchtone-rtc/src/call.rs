//! Runs a [`Peer`] on a tokio UDP socket: one task per call, no thread per call.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use touchtone::DtmfError;

use crate::error::RtcError;
use crate::event::PeerEvent;
use crate::peer::{Peer, PeerConfig};
use crate::record::{PcapngRecorder, RecordError};

/// Default time without any datagram from the remote after which a call is ended.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time before each `tonechange` that a call yields instead of sleeping: the runtime's
/// timer has millisecond ticks and wakes up to a tick late, while a task that yields keeps its
/// worker awake, so the event goes out on time. Longer windows cost CPU and measured no better.
pub const DEFAULT_YIELD_WINDOW: Duration = Duration::from_millis(2);

enum Command {
    Insert {
        tones: String,
        duration_ms: u32,
        gap_ms: u32,
        reply: oneshot::Sender<Result<(), DtmfError>>,
    },
    CanInsert(oneshot::Sender<bool>),
    Close,
}

/// A peer bound to its UDP socket, before it runs.
pub struct Call {
    /// The sans-IO peer; use it for offer/answer before [`Call::spawn`].
    pub peer: Peer,
    socket: UdpSocket,
    idle_timeout: Duration,
    yield_window: Duration,
    recorder: Option<PcapngRecorder>,
}

impl Call {
    /// Binds a UDP socket on `ip` (any free port) and creates a peer for it.
    pub async fn bind(ip: IpAddr, config: PeerConfig) -> Result<Call, RtcError> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = socket.local_addr()?;
        let peer = Peer::new(Instant::now(), local, config)?;
        Ok(Call {
            peer,
            socket,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            yield_window: DEFAULT_YIELD_WINDOW,
            recorder: None,
        })
    }

    /// Sets how long the call may go without hearing from the remote before it is ended.
    pub fn set_idle_timeout(&mut self, timeout: Duration) {
        self.idle_timeout = timeout;
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

    /// Starts the call's task on the current tokio runtime and returns its handle.
    pub fn spawn(self) -> CallHandle {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let local = self.peer.local_addr();
        let stats = Arc::new(CallStats::default());
        tokio::spawn(run(self, cmd_rx, ev_tx, stats.clone()));
        CallHandle {
            control: CallControl {
                cmd: cmd_tx,
                local,
                stats,
            },
            events: ev_rx,
        }
    }
}

/// Datagram counters of a call, readable while it runs.
#[derive(Debug, Default)]
pub struct CallStats {
    /// UDP datagrams received.
    pub datagrams_in: AtomicU64,
    /// UDP datagrams sent.
    pub datagrams_out: AtomicU64,
}

/// The application's side of a running call.
pub struct CallHandle {
    control: CallControl,
    events: mpsc::UnboundedReceiver<PeerEvent>,
}

/// The command side of a call: cheap to clone, usable from many tasks.
#[derive(Clone)]
pub struct CallControl {
    cmd: mpsc::UnboundedSender<Command>,
    local: SocketAddr,
    stats: Arc<CallStats>,
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
    ) -> Result<Result<(), DtmfError>, RtcError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Insert {
                tones: tones.to_string(),
                duration_ms,
                gap_ms,
                reply,
            })
            .map_err(|_| RtcError::CallEnded)?;
        rx.await.map_err(|_| RtcError::CallEnded)
    }

    /// `canInsertDTMF` of the call's audio sender.
    pub async fn can_insert_dtmf(&self) -> bool {
        let (reply, rx) = oneshot::channel();
        if self.cmd.send(Command::CanInsert(reply)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Datagram counters.
    pub fn stats(&self) -> &CallStats {
        &self.stats
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

/// Waits as planned by [`plan_wait`].
async fn wait_until(deadline: Instant, playout: Option<Instant>, window: Duration) {
    let plan = plan_wait(deadline, playout, window);
    if plan.sleep_until > Instant::now() {
        tokio::time::sleep_until(plan.sleep_until.into()).await;
    }
    if let Some(end) = plan.yield_until {
        while Instant::now() < end {
            tokio::task::yield_now().await;
        }
    }
}

async fn run(
    call: Call,
    mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    ev_tx: mpsc::UnboundedSender<PeerEvent>,
    stats: Arc<CallStats>,
) {
    let Call {
        mut peer,
        socket,
        idle_timeout,
        yield_window,
        mut recorder,
    } = call;
    let mut buf = vec![0u8; 2048];
    let mut last_heard = Instant::now();
    let mut commands_open = true;
    loop {
        // Events first: the application hears of a tone change before the datagrams go out.
        while let Some(ev) = peer.poll_event() {
            let _ = ev_tx.send(ev);
        }
        while let Some(r) = peer.poll_rtp_record() {
            if let Some(rec) = recorder.as_mut()
                && let Err(e) = rec.write(&r)
            {
                tracing::warn!("call {}: {e}; recording stopped", peer.local_addr());
                recorder = None;
                peer.set_record_rtp(false);
            }
        }
        while let Some((dst, data)) = peer.poll_transmit() {
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
        let idle_at = last_heard + idle_timeout;
        let deadline = peer.poll_timeout().unwrap_or(idle_at).min(idle_at);
        let result = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, src)) => {
                    stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
                    last_heard = Instant::now();
                    peer.handle_receive(last_heard, src, &buf[..n])
                }
                Err(e) => {
                    tracing::debug!("receive: {e}");
                    Ok(())
                }
            },
            _ = wait_until(deadline.max(now), peer.next_playout(), yield_window) => {
                let now = Instant::now();
                // Tone changes first, before str0m's timers and the packets' encryption.
                peer.run_playout(now);
                while let Some(ev) = peer.poll_event() {
                    let _ = ev_tx.send(ev);
                }
                if now >= idle_at {
                    tracing::info!("call {} idle for {idle_timeout:?}: ending it", peer.local_addr());
                    peer.close(now);
                }
                peer.handle_timeout(now)
            }
            cmd = cmd_rx.recv(), if commands_open => {
                let now = Instant::now();
                match cmd {
                    Some(Command::Insert { tones, duration_ms, gap_ms, reply }) => {
                        let _ = reply.send(peer.insert_dtmf(now, &tones, duration_ms, gap_ms));
                    }
                    Some(Command::CanInsert(reply)) => {
                        let _ = reply.send(peer.can_insert_dtmf());
                    }
                    Some(Command::Close) => peer.close(now),
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
