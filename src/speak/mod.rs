//! Speech out: reply text made speakable, the voice that synthesises it, the speaker actor
//! that plays it sentence by sentence (the audio of sentences said before kept), where the sound goes, and media ducking.

pub mod cache;
pub mod ducking;
pub mod engine;
pub mod kokoro;
pub mod playback;
pub mod sounds;
pub mod speakable;
pub mod speaker;
pub mod voice;
pub mod wyoming;

pub use playback::Output;
pub use speaker::{Speaker, SpeechEnd, Spoken};
