//! Processor time of the calling thread: what the front end's stages report they cost.

use std::time::Duration;

/// CPU time of the calling thread (the models run on it: one intra-op thread each).
pub(crate) fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `t` is.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
