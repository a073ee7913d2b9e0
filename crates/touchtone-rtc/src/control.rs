//! What the application asks of a running call and the counters it reads back, shared by a call's own
//! task and the port's tasks.

use std::sync::atomic::AtomicU64;

use tokio::sync::oneshot;
use touchtone::DtmfError;

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

/// The call's counters, updated by whoever runs it.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
}
