//! What may be logged. Transcripts, replies and the messages of vehicle errors (which can
//! carry names and places) stay out of the logs unless `cabin run --log-private` asks for them.

use std::sync::atomic::{AtomicBool, Ordering};

static PRIVATE: AtomicBool = AtomicBool::new(false);

/// Lets private text into the logs (debugging only).
pub fn log_private(on: bool) {
    PRIVATE.store(on, Ordering::Relaxed);
}

/// `text` when private logging is on, a placeholder otherwise.
pub fn private(text: &str) -> &str {
    if PRIVATE.load(Ordering::Relaxed) {
        text
    } else {
        "[private: run with --log-private to see it]"
    }
}
