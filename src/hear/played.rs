//! What the car plays, as the echo canceller's reference: Cabin's own voice, written by the
//! speaker as it queues each piece of a reply, and the media, read from a capture of what
//! goes to the loudspeakers (a monitor device on a head unit, a recording in tests).
//!
//! The speaker queues a piece the moment it starts to play (or right after what is queued
//! before it), and the front end takes as many samples as the microphone gives it: both run
//! in real time, so the reference reaches the canceller about when the loudspeaker plays it.
//! The canceller finds the remaining delay (the output and capture buffers, the air) itself.

use crate::hear::source::{AudioSource, Input};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// 16 kHz samples of Cabin's voice queued ahead of the microphone: a minute at most (a reply
/// queued faster than the front end reads loses its oldest audio, never memory).
const LIMIT: usize = 60 * 16_000;

/// Cabin's voice on its way to the loudspeaker, shared by the speaker (writes) and the
/// front end (reads). Neither side is an audio callback: the lock is held for a copy.
#[derive(Clone, Default)]
pub struct Played(Arc<Mutex<VecDeque<i16>>>);

impl Played {
    pub fn new() -> Played {
        Played::default()
    }

    /// `samples` (16 kHz) play after what is queued.
    pub fn queue(&self, samples: &[i16]) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(samples);
        if q.len() > LIMIT {
            let over = q.len() - LIMIT;
            q.drain(..over);
        }
    }

    /// The loudspeaker fell silent (stopped mid-reply).
    pub fn silence(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Adds the next `out.len()` samples played to `out` (silence once none are queued).
    fn mix_into(&self, out: &mut [i16]) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = out.len().min(q.len());
        for (o, s) in out.iter_mut().zip(q.drain(..n)) {
            *o = o.saturating_add(s);
        }
    }
}

/// What the car plays, as the front end is given it.
#[derive(Clone, Default)]
pub struct Playback {
    /// Cabin's own voice, as the speaker queues it.
    pub voice: Option<Played>,
    /// The media: a capture of what goes to the loudspeakers, opened on the front end's
    /// thread as the microphone is.
    pub media: Option<Input>,
}

impl Playback {
    /// Whether anything is given to cancel.
    pub fn any(&self) -> bool {
        self.voice.is_some() || self.media.is_some()
    }
}

/// Everything the car plays, read alongside the microphone.
pub(crate) struct Reference {
    pub voice: Option<Played>,
    pub media: Option<Box<dyn AudioSource>>,
}

impl Reference {
    /// What played while the microphone heard its last `out.len()` samples. A media capture
    /// that ends or fails leaves the voice alone as the reference (reported once).
    pub fn read(&mut self, out: &mut [i16]) {
        out.fill(0);
        if let Some(media) = &mut self.media {
            let mut filled = 0;
            while filled < out.len() {
                match media.read(&mut out[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        tracing::warn!(
                            "the media reference failed ({e}); cancelling Cabin's own voice only"
                        );
                        self.media = None;
                        break;
                    }
                }
            }
            out[filled..].fill(0);
        }
        if let Some(voice) = &self.voice {
            voice.mix_into(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hear::source::Recording;

    #[test]
    fn the_reference_is_the_voice_and_the_media_summed_in_order() {
        let voice = Played::new();
        voice.queue(&[100, 200, 300]);
        let mut r = Reference {
            voice: Some(voice.clone()),
            media: Some(Box::new(Recording::new(vec![1, 2, 3, 4, 5]))),
        };
        let mut out = [0i16; 2];
        r.read(&mut out);
        assert_eq!(out, [101, 202]);
        r.read(&mut out);
        assert_eq!(out, [303, 4]);
        // The media ran out mid-read, the voice before it: silence after.
        r.read(&mut out);
        assert_eq!(out, [5, 0]);
        r.read(&mut out);
        assert_eq!(out, [0, 0]);
    }

    #[test]
    fn a_stopped_reply_is_no_longer_played() {
        let voice = Played::new();
        voice.queue(&[7; 10]);
        voice.silence();
        let mut r = Reference {
            voice: Some(voice),
            media: None,
        };
        let mut out = [1i16; 4];
        r.read(&mut out);
        assert_eq!(out, [0; 4]);
    }

    #[test]
    fn a_reply_queued_faster_than_it_plays_keeps_its_newest_minute() {
        let voice = Played::new();
        voice.queue(&vec![1; LIMIT]);
        voice.queue(&[2; 5]);
        assert_eq!(voice.0.lock().unwrap().len(), LIMIT);
        assert_eq!(voice.0.lock().unwrap().back(), Some(&2));
    }
}
