//! Guards on what a model says before it is spoken: no markup, no recital of the
//! instructions, no echo of the request that sounds as if it were done.

use crate::text::is_han;
use crate::text::lexicon::Questions;
use crate::text::{Lexicon, Script};
use crate::understand::brain::prompt::INSTRUCTIONS;

/// One spoken paragraph: no markup, no line breaks.
pub(super) fn spoken(text: &str) -> String {
    text.replace(['*', '#', '`', '|'], "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words of `s`, lower-cased, without punctuation (an apostrophe stays: "can't"); a Han
/// ideograph is a word of its own, as it is to the tokenizer.
pub(super) fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        if (c.is_alphanumeric() && !is_han(c)) || c == '\'' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(word.to_lowercase());
            word.clear();
        }
        if is_han(c) {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word.to_lowercase());
    }
    out
}

/// Whether a sentence of `answer` is the driver's `request` said back as a command: given
/// "send twenty euros to my brother", a small model answers "send twenty euros to my brother."
/// or "set alarm for six tomorrow." for "set an alarm for six tomorrow". Spoken, that sounds as
/// if Cabin had done it. Such a sentence starts with the request's first word, has two words or
/// more, and none of its own (a plural aside) but `fillers`, which say nothing of their own;
/// a question is not one.
pub(super) fn echoes(request: &str, answer: &str, fillers: &[String]) -> bool {
    fn stem(w: &str) -> &str {
        w.strip_suffix('s').filter(|s| s.len() > 2).unwrap_or(w)
    }
    let request = words(request);
    let Some(first) = request.first() else {
        return false;
    };
    crate::text::take_sentences(&mut answer.to_string(), true)
        .iter()
        .filter(|sentence| !sentence.trim_end().ends_with('?'))
        .map(|sentence| words(sentence))
        .any(|said| {
            said.len() >= 2
                && said[0] == *first
                && said
                    .iter()
                    .all(|w| fillers.contains(w) || request.iter().any(|r| stem(r) == stem(w)))
        })
}

/// Whether `core` (the driver's words without the polite and addressing ones around them)
/// asks something: it opens with one of the lexicon's question openers ("why is the sky
/// blue", "what's the speed of light"; an opener of several words only with more after it: "do
/// you like music") or ends with a question ending (Chinese 吗). Suggestions and requests that
/// open like a question ("how about some music", "do you mind …") are not questions.
pub fn asks_a_question(core: &str, questions: &Questions) -> bool {
    let said = words(core);
    let opens = |phrase: &String, more_after_many: bool| {
        let p = words(phrase);
        let more = usize::from(more_after_many && p.len() > 1);
        !p.is_empty() && said.len() >= p.len() + more && said.starts_with(&p)
    };
    if questions.requests.iter().any(|r| opens(r, false)) {
        return false;
    }
    questions.openers.iter().any(|o| opens(o, true))
        || said.last().is_some_and(|w| questions.endings.contains(w))
}

/// How many words in a row of [`INSTRUCTIONS`] make an answer a recital of them.
pub(super) const RECITAL_WORDS: usize = 6;

/// Whether `words` repeat the instructions: a small model sometimes answers with them ("Your
/// words are spoken while driving, so one or two short sentences, …").
pub(super) fn recites_instructions(text: &str) -> bool {
    // Checked on every generated piece: the instructions are split once.
    static INSTRUCTION_WORDS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| words(INSTRUCTIONS));
    let instructions = &*INSTRUCTION_WORDS;
    words(text)
        .windows(RECITAL_WORDS)
        .any(|run| instructions.windows(RECITAL_WORDS).any(|i| i == run))
}

/// Whether `text` shows pieces of the prompt: the few-shot lines' arrows ("open the window ->
/// windows-open") or their placeholders ("navigate to <place>"), which a small model sometimes
/// says instead of an answer.
pub(super) fn shows_prompt(text: &str) -> bool {
    let placeholder = text.split('<').skip(1).any(|rest| {
        rest.split_once('>').is_some_and(|(inside, _)| {
            !inside.is_empty()
                && inside
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        })
    });
    placeholder || text.contains("->")
}

/// Whether `text` writes out a tool call or code rather than saying words: braces, brackets,
/// `"key":`, or an identifier (`media_volume_up`, `media.mute`). The small model sometimes
/// speaks its call ("jsonrpc {"name": …") instead of making it.
pub(super) fn shows_tool_syntax(text: &str) -> bool {
    if text.contains(['{', '}', '[', ']']) || text.contains("\":") {
        return true;
    }
    let chars: Vec<char> = text.chars().collect();
    let snake = chars
        .windows(3)
        .any(|w| w[1] == '_' && w[0].is_alphanumeric() && w[2].is_alphanumeric());
    // "media.mute", not "e.g." or "A.C." or "21.5".
    let lower = |w: &[char]| w.iter().all(char::is_ascii_lowercase);
    let dotted = chars
        .windows(5)
        .any(|w| w[2] == '.' && lower(&w[..2]) && lower(&w[3..]));
    snake || dotted
}

/// Whether `text` is in another language than the profile's `lexicon`: in another script
/// (Latin words outweighing the Han characters of a Chinese answer, or Han characters in a
/// Latin-script one), or, in the same script, with more common words of another shipped
/// lexicon than of its own (an English "I'm sorry, but I can't assist with that." from an
/// Indonesian profile's model).
pub(super) fn other_language(text: &str, lexicon: &Lexicon) -> bool {
    let han = text.chars().filter(|c| is_han(*c)).count();
    let latin = text.chars().filter(char::is_ascii_alphabetic).count();
    let other_script = match lexicon.script {
        // A Latin name or two ("FM", "Cabin") is Chinese too.
        Script::Han => latin > 12 && latin > han,
        Script::Latin => han > 0,
    };
    let said = words(text);
    let hits = |l: &Lexicon| said.iter().filter(|w| l.common.contains(w)).count();
    let own = hits(lexicon);
    other_script
        || Lexicon::all_shipped()
            .iter()
            .filter(|l| l.script == lexicon.script && l.common != lexicon.common)
            .any(|l| {
                let other = hits(l);
                other >= 2 && other > own
            })
}

/// What makes an answer unfit to be spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flaw {
    Markup,
    ToolSyntax,
    PromptPieces,
    InstructionsRecited,
    /// The same words over and over.
    Loop,
    /// The request said back as if done.
    Echo,
    OtherLanguage,
}

/// Why an `answer` to `request` must not be spoken in a profile of language `lexicon`, if it
/// must not: markup, tool syntax, pieces of the prompt, a recital of the instructions, the
/// request said back as a command, or another language. `cabin eval` counts the replies this
/// rejects.
pub fn answer_flaw(request: &str, answer: &str, lexicon: &Lexicon) -> Option<Flaw> {
    if answer.contains(['*', '#', '`', '|']) {
        Some(Flaw::Markup)
    } else if shows_tool_syntax(answer) {
        Some(Flaw::ToolSyntax)
    } else if shows_prompt(answer) {
        Some(Flaw::PromptPieces)
    } else if recites_instructions(answer) {
        Some(Flaw::InstructionsRecited)
    } else if loops(answer) {
        Some(Flaw::Loop)
    } else if echoes(request, answer, &lexicon.echo.fillers) {
        Some(Flaw::Echo)
    } else if other_language(answer, lexicon) {
        Some(Flaw::OtherLanguage)
    } else {
        None
    }
}

/// How many words `text` is to a listener: Latin words, and Han characters at two a word
/// (Chinese is written without spaces).
pub(super) fn spoken_length(text: &str) -> usize {
    let han = text.chars().filter(|c| is_han(*c)).count();
    let latin = text
        .split(|c: char| c.is_whitespace() || is_han(c))
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count();
    latin + han.div_ceil(2)
}

/// The start of `sentence` that is at most `max` words long ([`spoken_length`]).
fn cut_to(sentence: &str, max: usize) -> String {
    let mut end = 0;
    for (i, c) in sentence.char_indices() {
        let next = i + c.len_utf8();
        if spoken_length(&sentence[..next]) > max {
            break;
        }
        end = next;
    }
    sentence[..end].trim_end().to_string()
}

/// At most `max` words, as a profile's own replies are: whole sentences while they fit, and
/// the first sentence cut at `max` words if it alone is longer. A driver hears every word.
pub(super) fn within_words(text: &str, max: usize) -> String {
    let mut rest = text.to_string();
    let mut out = String::new();
    let mut words = 0;
    for sentence in crate::text::take_sentences(&mut rest, true) {
        let n = spoken_length(&sentence);
        if words + n > max {
            if out.is_empty() {
                out = cut_to(&sentence, max);
            }
            break;
        }
        if !out.is_empty() && !sentence.starts_with(is_han) {
            out.push(' ');
        }
        out.push_str(&sentence);
        words += n;
    }
    out
}

/// Whether `text` goes round in a loop: the same three words three times or more, as a small
/// model does when it has nothing more to say ("空调、空调、空调", "a concert, a film, a
/// concert, a concert").
pub(super) fn loops(text: &str) -> bool {
    let said = words(text);
    let mut seen: std::collections::HashMap<&[String], usize> = Default::default();
    said.windows(3).any(|w| {
        let n = seen.entry(w).or_default();
        *n += 1;
        *n >= 3
    })
}
