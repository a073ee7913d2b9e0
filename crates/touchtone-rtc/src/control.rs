//! The application's side of a running call: what it asks, what it hears and the counters it reads back,
//! shared by a call's own task and the port's tasks.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use touchtone::DtmfError;

use crate::event::PeerEvent;
use crate::peer::Peer;
use crate::record::PcapngRecorder;

/// What the application asks of a running call.
#[derive(Debug)]
pub(crate) enum Command {
    Insert {
        tones: String,
        duration_ms: u32,
        gap_ms: u32,
        reply: oneshot::Sender<Result<(), DtmfError>>,
    },
    CanInsert(oneshot::Sender<bool>),
    Close,
}

impl Command {
    /// Carries the command out on `peer` at `now`, answering it where it asks for an answer.
    pub(crate) fn apply(self, peer: &mut Peer, now: Instant) {
        match self {
            Command::Insert {
                tones,
                duration_ms,
                gap_ms,
                reply,
            } => {
                let _ = reply.send(peer.insert_dtmf(now, &tones, duration_ms, gap_ms));
            }
            Command::CanInsert(reply) => {
                let _ = reply.send(peer.can_insert_dtmf());
            }
            Command::Close => peer.close(now),
        }
    }
}

/// Where a running call's events go.
pub(crate) enum EventOut {
    /// The channel its [`CallHandle`](crate::CallHandle) reads (which may have stopped listening).
    Channel(mpsc::UnboundedSender<PeerEvent>),
    /// The application's function, called by the task that runs the call.
    Function(Box<dyn FnMut(PeerEvent) + Send>),
}

impl EventOut {
    fn deliver(&mut self, ev: PeerEvent) {
        match self {
            EventOut::Channel(tx) => {
                let _ = tx.send(ev);
            }
            EventOut::Function(f) => {
                // A panic in the application's function must not end the task, which runs other
                // calls too: it is logged and the call goes on.
                let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ev)));
                if delivered.is_err() {
                    tracing::error!("a call's event function panicked; the event is lost");
                }
            }
        }
    }
}

impl std::fmt::Debug for EventOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventOut::Channel(_) => "EventOut::Channel",
            EventOut::Function(_) => "EventOut::Function",
        })
    }
}

/// Passes the peer's queued events to the application and its RTP records to `recorder`; the first
/// failed write stops the recording.
pub(crate) fn pass_on(
    peer: &mut Peer,
    events: &mut EventOut,
    recorder: &mut Option<PcapngRecorder>,
) {
    while let Some(ev) = peer.poll_event() {
        events.deliver(ev);
    }
    while let Some(r) = peer.poll_rtp_record() {
        if let Some(rec) = recorder.as_mut()
            && let Err(e) = rec.write(&r)
        {
            tracing::warn!("call {}: {e}; recording stopped", peer.local_addr());
            *recorder = None;
            peer.set_record_rtp(false);
        }
    }
}

/// The call's counters, updated by whoever runs it.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
}
