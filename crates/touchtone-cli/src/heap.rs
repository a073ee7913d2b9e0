//! The process's heap: mimalloc on small pages, and giving freed pages back to the system.
//!
//! mimalloc allocates faster than glibc's malloc under many threads (a 1,000-call burst is up sooner:
//! BENCHMARKS.md). By default it asks the kernel for transparent huge pages on its regions; then the
//! first touch of each 2 MiB zeroes all of it: a 1,000-call burst spent 43% of its CPU on that in its
//! first 200 ms, and was up 0.07 to 0.28 s later (BENCHMARKS.md, "Small pages"). [`use_small_pages`]
//! turns huge pages off for the process.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The allocator every `touchtone` command runs on.
#[global_allocator]
static HEAP: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, including memory already mapped; a kernel
/// without the call keeps them (slower bursts, nothing wrong) and says why.
pub fn use_small_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
        let done = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Bumped each time the threads are to give their free pages back.
static ROUND: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last round this thread gave its pages back in.
    static DONE: Cell<u64> = const { Cell::new(0) };
}

/// Asks every runtime thread to give its free pages back when it next idles.
pub fn give_back() {
    ROUND.fetch_add(1, Ordering::Relaxed);
}

/// The runtime's park hook: gives this thread's free pages back if asked since it last did.
pub fn on_park() {
    let round = ROUND.load(Ordering::Relaxed);
    if DONE.with(|d| d.replace(round)) != round {
        // SAFETY: mi_collect only walks the allocator's own structures for this thread.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}
