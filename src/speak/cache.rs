//! The audio of sentences said before, so that a reply heard before ("Which window?", the
//! fixed confirmations, small talk, errors) plays at once instead of after a synthesis. Bounded
//! by the bytes of its samples; the sentence used longest ago goes first.

use std::collections::HashMap;
use std::sync::Arc;

/// The most bytes of audio the cache keeps: 16 MiB, about three minutes of a 22,050 Hz voice.
pub const LIMIT_BYTES: usize = 16 << 20;

/// One sentence's audio, as the voice made it.
#[derive(Debug, Clone)]
pub struct Said {
    pub samples: Arc<[f32]>,
    pub sample_rate: u32,
    /// Cabin's voice says the wake word in it.
    pub own_wake: bool,
}

impl Said {
    fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.samples)
    }
}

/// Owned by the voice thread, keyed by the text the voice was given.
#[derive(Debug)]
pub struct SpeechCache {
    entries: HashMap<String, (Said, u64)>,
    bytes: usize,
    limit: usize,
    /// Counts uses, for the least recently used.
    clock: u64,
}

impl SpeechCache {
    pub fn new(limit: usize) -> SpeechCache {
        SpeechCache {
            entries: HashMap::new(),
            bytes: 0,
            limit,
            clock: 0,
        }
    }

    /// The audio of `text`, if it was said before.
    pub fn get(&mut self, text: &str) -> Option<Said> {
        self.clock += 1;
        let (said, used) = self.entries.get_mut(text)?;
        *used = self.clock;
        Some(said.clone())
    }

    /// Keeps `said` as the audio of `text`, making room by dropping what was used longest ago.
    /// A sentence longer than an eighth of the limit (a long answer, unlikely to come again)
    /// is not kept, so that it does not push out the short replies that do.
    pub fn insert(&mut self, text: &str, said: Said) {
        let bytes = said.bytes();
        if bytes > self.limit / 8 || self.entries.contains_key(text) {
            return;
        }
        while self.bytes + bytes > self.limit {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((gone, _)) = self.entries.remove(&oldest) {
                self.bytes -= gone.bytes();
            }
        }
        self.clock += 1;
        self.bytes += bytes;
        self.entries.insert(text.to_string(), (said, self.clock));
    }

    /// How many sentences it holds, and their bytes.
    pub fn size(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(samples: usize) -> Said {
        Said {
            samples: vec![0.5; samples].into(),
            sample_rate: 22_050,
            own_wake: false,
        }
    }

    #[test]
    fn a_sentence_said_before_comes_back_and_the_least_recently_used_makes_room() {
        // Room for eight sentences of 100 samples (400 bytes each).
        let mut cache = SpeechCache::new(8 * 400);
        for text in [
            "one", "two", "three", "four", "five", "six", "seven", "eight",
        ] {
            cache.insert(text, said(100));
        }
        assert_eq!(cache.size(), (8, 3200));
        assert_eq!(cache.get("one").unwrap().samples.len(), 100);
        cache.insert("nine", said(100));
        assert_eq!(cache.size(), (8, 3200), "the bound was passed");
        assert!(cache.get("two").is_none(), "the least recently used stayed");
        assert!(
            cache.get("one").is_some(),
            "a sentence used again was dropped"
        );
        assert!(cache.get("nine").is_some());
    }

    #[test]
    fn a_long_answer_is_not_kept() {
        let mut cache = SpeechCache::new(8 * 400);
        cache.insert("short", said(100));
        cache.insert("a long answer", said(101));
        assert!(cache.get("a long answer").is_none());
        assert!(cache.get("short").is_some());
        assert_eq!(cache.size(), (1, 400));
    }
}
