//! Words and sentences, the lowest room: the tokenizer every template and utterance goes
//! through, a language's words (its lexicon), number formatting, and sentence splitting for
//! streamed replies. Imports nothing of Cabin's.

pub mod lexicon;
mod sentences;
mod tokens;

pub use lexicon::{Lexicon, NumberWords, Script};
pub use sentences::{pieces, take_phrases, take_sentences};
pub use tokens::{format_number, is_han, join_words, tokenize, tokenize_with, Token};
