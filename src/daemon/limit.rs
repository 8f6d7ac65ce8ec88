//! Each D-Bus caller's allowance of requests: a flood from one connection must not become a
//! flood of turns and vehicle calls (10,000 requests from 5 connections made about 490 calls
//! for 81 answers), nor keep replacing everyone else's requests.

use std::collections::HashMap;
use tokio::time::{Duration, Instant};

/// Requests one caller may send at once (a person at an HMI sends one every few seconds)...
pub const BURST: f64 = 20.0;
/// ...and, over time, a second.
pub const PER_SECOND: f64 = 10.0;

/// Callers kept before those whose allowance is whole again are forgotten: a forgotten caller
/// is one with a whole allowance, so forgetting it changes nothing.
const KEPT: usize = 64;

/// The allowance left to each caller that used some of it lately.
#[derive(Debug, Default)]
pub(super) struct Limits {
    callers: HashMap<String, Allowance>,
}

#[derive(Debug, Clone, Copy)]
struct Allowance {
    left: f64,
    at: Instant,
}

impl Limits {
    /// Takes one request from `caller`'s allowance at `now`; Err with how long until one is
    /// left again when none is.
    pub(super) fn take(&mut self, caller: &str, now: Instant) -> Result<(), Duration> {
        if self.callers.len() >= KEPT && !self.callers.contains_key(caller) {
            self.callers.retain(|_, a| refilled(*a, now) < BURST);
        }
        let allowance = self.callers.entry(caller.to_string()).or_insert(Allowance {
            left: BURST,
            at: now,
        });
        let left = refilled(*allowance, now);
        if left < 1.0 {
            *allowance = Allowance { left, at: now };
            return Err(Duration::from_secs_f64((1.0 - left) / PER_SECOND));
        }
        *allowance = Allowance {
            left: left - 1.0,
            at: now,
        };
        Ok(())
    }
}

/// What is left of an allowance at `now`, refilled since it was last used.
fn refilled(a: Allowance, now: Instant) -> f64 {
    (a.left + now.duration_since(a.at).as_secs_f64() * PER_SECOND).min(BURST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_each_caller_on_its_own() {
        let mut limits = Limits::default();
        let start = Instant::now();
        for _ in 0..BURST as usize {
            assert_eq!(limits.take(":1.7", start), Ok(()));
        }
        let wait = limits.take(":1.7", start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Another caller has its own allowance.
        assert_eq!(limits.take(":1.8", start), Ok(()));
        // A tenth of a second later, one more.
        let later = start + Duration::from_millis(100);
        assert_eq!(limits.take(":1.7", later), Ok(()));
        assert!(limits.take(":1.7", later).is_err());
        // A caller that waits gets its whole burst back, no more.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..BURST as usize {
            assert_eq!(limits.take(":1.7", much_later), Ok(()));
        }
        assert!(limits.take(":1.7", much_later).is_err());
    }

    #[test]
    fn callers_with_a_whole_allowance_are_forgotten() {
        let mut limits = Limits::default();
        let start = Instant::now();
        for i in 0..1000 {
            let _ = limits.take(&format!(":1.{i}"), start + Duration::from_secs(i * 10));
        }
        assert!(limits.callers.len() <= KEPT, "{}", limits.callers.len());
    }
}
