//! Speech in, up to a command's audio: audio sources (files, standard input, the null device,
//! the microphone), the wake word, voice activity and end-pointing, and the front end thread
//! that runs them.

pub mod audio;
pub mod clean;
mod cpu;
pub mod front_end;
pub mod mic;
pub mod played;
pub mod reopen;
pub mod source;
pub mod vad;
pub mod wake;
pub mod wyoming;

pub use front_end::{Engines, FrontEnd, FrontEndError, Heard, Judge};
pub use played::{Playback, Played};
pub use source::{AudioSource, Input};
