//! A capture device that comes back. Unplugged, failed or silent (no samples at all for a
//! while), a microphone used to leave Cabin deaf with nothing but a log line; now the front end
//! is told, reads real-time silence meanwhile, and the device is reopened with back-off until
//! it returns.

use crate::hear::mic::MicError;
use crate::hear::source::{AudioSource, NullDevice};
use std::time::{Duration, Instant};

/// First wait before reopening; it doubles up to [`MAX_BACKOFF`] while the device stays away.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Opens the device again.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn AudioSource>, MicError> + Send>;

/// Told when the device is lost (`false`, why) and when it is back (`true`).
pub type Report = Box<dyn FnMut(bool, String) + Send>;

pub struct Reopening {
    open: Opener,
    /// The device while it works.
    device: Option<Box<dyn AudioSource>>,
    /// Silence at the pace of the lost device, from when it was lost.
    silence: NullDevice,
    retry_at: Instant,
    backoff: Duration,
    report: Report,
}

impl Reopening {
    /// `device`, opened; `open` opens it again after it is lost; `report` hears of both.
    pub fn new(device: Box<dyn AudioSource>, open: Opener, report: Report) -> Self {
        Reopening {
            open,
            device: Some(device),
            silence: NullDevice::new(),
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
            report,
        }
    }

    fn tell(&mut self, available: bool, detail: String) {
        if available {
            tracing::info!("{detail}");
        } else {
            tracing::error!("{detail}");
        }
        (self.report)(available, detail);
    }

    fn lost(&mut self, why: String) {
        self.device = None;
        self.silence = NullDevice::new();
        self.backoff = FIRST_BACKOFF;
        self.retry_at = Instant::now() + self.backoff;
        self.tell(
            false,
            format!("the microphone stopped ({why}); reopening it"),
        );
    }
}

impl AudioSource for Reopening {
    fn read(&mut self, out: &mut [i16]) -> std::io::Result<usize> {
        if let Some(device) = &mut self.device {
            match device.read(out) {
                Ok(0) => self.lost("it ended".into()),
                Ok(n) => return Ok(n),
                Err(e) => self.lost(e.to_string()),
            }
        }
        if Instant::now() >= self.retry_at {
            match (self.open)() {
                Ok(device) => {
                    self.device = Some(device);
                    self.tell(true, "the microphone is back".into());
                    return self.read(out);
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot reopen the microphone: {e}; next try in {:.1} s",
                        self.backoff.as_secs_f64()
                    );
                    self.retry_at = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.silence.read(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hear::source::Recording;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    /// Gives `samples` of a tone, then fails as an unplugged device does.
    struct Unplugged(Recording);

    impl AudioSource for Unplugged {
        fn read(&mut self, out: &mut [i16]) -> std::io::Result<usize> {
            match self.0.read(out)? {
                0 => Err(std::io::Error::other("device unplugged")),
                n => Ok(n),
            }
        }
    }

    fn device(samples: usize) -> Box<dyn AudioSource> {
        Box::new(Unplugged(Recording::new(vec![1000; samples])))
    }

    #[test]
    fn a_lost_device_is_reported_bridged_with_silence_and_reopened_when_it_returns() {
        let (tx, heard) = mpsc::channel();
        let tries = Arc::new(AtomicUsize::new(0));
        let opener = {
            let tries = tries.clone();
            Box::new(move || {
                // Away for the first two tries, then back.
                if tries.fetch_add(1, Ordering::Relaxed) < 2 {
                    Err(MicError::NoDevice)
                } else {
                    Ok(device(1_600))
                }
            })
        };
        let report = Box::new(move |available, detail| tx.send((available, detail)).unwrap());
        let mut source = Reopening::new(device(1_600), opener, report);
        let mut out = [0i16; 1_600];
        assert_eq!(source.read(&mut out).unwrap(), 1_600);
        assert!(out.iter().all(|s| *s == 1000));
        // Unplugged: told, then silence at real-time pace while the device is away.
        let started = Instant::now();
        let mut silent = 0;
        loop {
            let n = source.read(&mut out).unwrap();
            if out[..n].iter().all(|s| *s == 1000) {
                break;
            }
            assert!(out[..n].iter().all(|s| *s == 0));
            silent += n;
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never reopened"
            );
        }
        let (available, detail) = heard.try_recv().unwrap();
        assert!(
            !available && detail.contains("device unplugged"),
            "{detail}"
        );
        assert!(heard.try_recv().unwrap().0, "not told it is back");
        // Tried three times, 0.5 s then 0.5 s then 1 s apart: two seconds of silence, given at
        // the pace a microphone would have (so the front end neither spins nor falls behind).
        assert_eq!(tries.load(Ordering::Relaxed), 3);
        let waited = started.elapsed().as_secs_f64();
        assert!((1.9..4.0).contains(&waited), "{waited} s");
        let silence_s = silent as f64 / 16_000.0;
        assert!(
            (silence_s - waited).abs() < 0.3,
            "{silence_s} s of silence in {waited} s"
        );
    }
}
