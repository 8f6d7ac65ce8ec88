//! A language's words as data: what the tokenizer folds into numbers, the fillers the grammar
//! drops, yes and no, what opens a question. One TOML file per language under `lexicons/`,
//! shipped in the binary; a profile picks one by its language or names its own file, and the
//! code reads sentences through it rather than through word lists of its own.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::LazyLock;

/// The lexicons shipped in the binary: each profile language and its file.
pub const SHIPPED: &[(&str, &str)] = &[
    ("en", include_str!("../../lexicons/en.toml")),
    ("zh-CN", include_str!("../../lexicons/zh.toml")),
    ("id", include_str!("../../lexicons/id.toml")),
];

/// Why a lexicon file cannot be used: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct LexiconError {
    /// The section and key ("numbers.units"), or "syntax".
    pub field: String,
    pub problem: String,
    /// The byte range of a syntax error, for its line.
    pub span: Option<std::ops::Range<usize>>,
}

/// A language's words, parsed and checked once (see `lexicons/en.toml` for what each is for).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lexicon {
    pub script: Script,
    pub common: Vec<String>,
    pub numbers: NumberWords,
    pub fillers: Fillers,
    pub references: References,
    pub answers: Answers,
    pub questions: Questions,
    pub echo: Echo,
    pub directions: Directions,
    pub replies: Replies,
    pub speech: Speech,
}

/// How the language is heard and spoken.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Speech {
    /// The recogniser's language code (whisper's): decoding is told it rather than detecting
    /// it, which flaps between languages on commands of a few words.
    pub recogniser_language: String,
    /// A sentence in the language given to the decoder before each utterance, "" for none:
    /// it sets the script (whisper base writes Mandarin in Traditional characters without a
    /// Simplified one).
    pub recogniser_prompt: String,
    /// Transcripts in Traditional characters are rewritten in Simplified (whisper base slips
    /// into Traditional even with a Simplified prompt).
    pub recogniser_simplified: bool,
    /// eSpeak NG's voice for the language: Cabin's fallback voice.
    pub espeak_voice: String,
    /// Replies have their numbers, units and abbreviations written out in English words for
    /// the voice (`speak::speakable`); false where the voice reads the language's digits.
    pub numbers_in_words: bool,
    /// How a voice that reads IPA (Kokoro) is given the language's sounds.
    pub sounds: Sounds,
    /// Pinyin's sounds, where `sounds = "pinyin"`.
    #[serde(default)]
    pub pinyin: Option<PinyinSounds>,
}

/// Where a voice that reads IPA gets a language's sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sounds {
    /// eSpeak NG's IPA (`espeak-ng --ipa`).
    Espeak,
    /// Each word's pinyin (Mandarin), through [`PinyinSounds`].
    Pinyin,
}

/// A voice's sounds for pinyin: a syllable is its initial's sounds, its final's, then its
/// tone's (lexicons/zh.toml).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinyinSounds {
    pub initials: HashMap<String, String>,
    pub finals: HashMap<String, String>,
    /// Syllables with no initial, spelled with y or w, as the finals they are ("yi" is "i").
    pub spelled: HashMap<String, String>,
    /// The sound "i" stands for after these initials ("zhi", "si").
    pub apical: HashMap<String, String>,
    /// Initials after which "u" is "ü" ("ju").
    pub umlaut_after: Vec<String>,
    /// Tones 1 to 4; the neutral tone has none.
    pub tones: [String; 4],
    /// The digits 0-9 as characters, to read numbers written in digits.
    pub digits: [String; 10],
    /// Words read otherwise than their characters' first reading, as pinyin with tone numbers.
    pub readings: HashMap<String, String>,
}

/// Cabin's own replies in the language, where no intent of the profile has one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    pub decline: String,
    pub fragment: String,
    /// A bare number (`{number}`) or enum value (`{value}`) said back in the question.
    pub fragment_number: String,
    pub fragment_value: String,
    pub confirm_cancelled: String,
    /// Asked before words the recogniser was unsure of act (`{heard}`: the words).
    pub heard_unsure: String,
    pub give_up: String,
    pub unknown_seat: String,
    pub unavailable: String,
    pub cant_hear: String,
    /// `{target}`: the intent's action target.
    pub unreachable: String,
    pub timeout: String,
    pub refused: String,
}

/// The script a language is written in: what an answer in it must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Script {
    Latin,
    Han,
}

/// The words spoken numbers are made of.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberWords {
    pub units: HashMap<String, u64>,
    pub tens: HashMap<String, u64>,
    pub times_ten: Vec<String>,
    pub plus_ten: Vec<String>,
    pub hundred: Vec<String>,
    pub thousand: Vec<String>,
    pub one_hundred: Vec<String>,
    pub one_thousand: Vec<String>,
    pub article: Vec<String>,
    pub and: Vec<String>,
    pub point: Vec<String>,
    pub zero_after_point: Vec<String>,
    pub zero_digit: Vec<String>,
    pub fractions: HashMap<String, f64>,
    pub signs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fillers {
    pub leading: Vec<String>,
    pub trailing: Vec<String>,
    pub around_values: Vec<String>,
    pub around_answers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct References {
    pub determiners: Vec<String>,
    /// Endings that make another form of a word ("seat" → "seats"): such a form of a word the
    /// profile knows is never dropped as a word said about something else.
    pub word_endings: Vec<String>,
    pub speaker: Vec<String>,
    pub speaker_spoken: String,
    pub not_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    pub yes: Vec<String>,
    pub no: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Questions {
    pub openers: Vec<String>,
    pub requests: Vec<String>,
    pub endings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Echo {
    pub fillers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directions {
    pub words: Vec<String>,
    pub too: Vec<String>,
    pub no_more: Vec<String>,
    pub off: Vec<String>,
    pub comparative_suffix: String,
    pub comparative_min_letters: usize,
}

impl Lexicon {
    /// Parses and checks a lexicon file's text.
    pub fn parse(text: &str) -> Result<Lexicon, LexiconError> {
        let lexicon: Lexicon = toml::from_str(text).map_err(|e| LexiconError {
            field: "syntax".into(),
            problem: e.message().trim().to_string(),
            span: e.span(),
        })?;
        lexicon.check()?;
        Ok(lexicon)
    }

    /// The shipped lexicon of a profile `language`, None if none is shipped.
    pub fn shipped(language: &str) -> Option<Lexicon> {
        let (_, text) = SHIPPED.iter().find(|(l, _)| *l == language)?;
        // Every shipped lexicon is parsed by the test suite.
        Lexicon::parse(text).ok()
    }

    /// Every shipped lexicon, for telling languages apart.
    pub fn all_shipped() -> &'static [Lexicon] {
        static ALL: LazyLock<Vec<Lexicon>> = LazyLock::new(|| {
            SHIPPED
                .iter()
                .filter_map(|(_, text)| Lexicon::parse(text).ok())
                .collect()
        });
        &ALL
    }

    /// English, for text read where no profile is at hand.
    pub fn english() -> &'static Lexicon {
        static ENGLISH: LazyLock<Lexicon> = LazyLock::new(|| {
            Lexicon::shipped("en").expect("the English lexicon is checked by the test suite")
        });
        &ENGLISH
    }

    /// Every word is lower-case and not blank, and every number word has a value its role
    /// allows: the code compares them with normalised words.
    fn check(&self) -> Result<(), LexiconError> {
        let n = &self.numbers;
        let bad = |field: &str, problem: String| LexiconError {
            field: field.to_string(),
            problem,
            span: None,
        };
        if let Some((w, v)) = n.units.iter().find(|(_, v)| **v > 9) {
            return Err(bad(
                "numbers.units",
                format!("'{w}' is {v}, not a digit 0-9"),
            ));
        }
        if let Some((w, v)) = n.tens.iter().find(|(_, v)| !(10..=99).contains(*v)) {
            return Err(bad("numbers.tens", format!("'{w}' is {v}, not 10-99")));
        }
        let keys = |m: Vec<&String>| m.into_iter().cloned().collect::<Vec<_>>();
        let lists: [(&str, Vec<String>); 28] = [
            ("numbers.units", keys(n.units.keys().collect())),
            ("numbers.tens", keys(n.tens.keys().collect())),
            ("numbers.times_ten", n.times_ten.clone()),
            ("numbers.plus_ten", n.plus_ten.clone()),
            ("numbers.hundred", n.hundred.clone()),
            ("numbers.thousand", n.thousand.clone()),
            ("numbers.one_hundred", n.one_hundred.clone()),
            ("numbers.one_thousand", n.one_thousand.clone()),
            ("numbers.article", n.article.clone()),
            ("numbers.and", n.and.clone()),
            ("numbers.point", n.point.clone()),
            ("numbers.zero_after_point", n.zero_after_point.clone()),
            ("numbers.zero_digit", n.zero_digit.clone()),
            ("numbers.fractions", keys(n.fractions.keys().collect())),
            ("numbers.signs", n.signs.clone()),
            ("fillers.leading", self.fillers.leading.clone()),
            ("fillers.trailing", self.fillers.trailing.clone()),
            ("fillers.around_values", self.fillers.around_values.clone()),
            (
                "fillers.around_answers",
                self.fillers.around_answers.clone(),
            ),
            (
                "references.determiners",
                self.references.determiners.clone(),
            ),
            (
                "references.word_endings",
                self.references.word_endings.clone(),
            ),
            ("references.speaker", self.references.speaker.clone()),
            ("references.not_names", self.references.not_names.clone()),
            ("answers.yes", self.answers.yes.clone()),
            ("answers.no", self.answers.no.clone()),
            ("questions.openers", self.questions.openers.clone()),
            ("echo.fillers", self.echo.fillers.clone()),
            ("directions.words", self.directions.words.clone()),
        ];
        for (field, words) in &lists {
            if let Some(w) = words
                .iter()
                .find(|w| w.trim().is_empty() || w.to_lowercase() != **w)
            {
                return Err(bad(
                    field,
                    format!("'{w}' is blank or not lower-case: no spoken word matches it"),
                ));
            }
        }
        let code = &self.speech.recogniser_language;
        if !(2..=3).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(bad(
                "speech.recogniser_language",
                format!(
                    "'{code}' is not a language code (two or three lower-case letters, such as en)"
                ),
            ));
        }
        if self.speech.espeak_voice.trim().is_empty() {
            return Err(bad(
                "speech.espeak_voice",
                "no voice: `espeak-ng --voices` lists them".into(),
            ));
        }
        if self.speech.sounds == Sounds::Pinyin {
            if self.speech.pinyin.is_none() {
                return Err(bad(
                    "speech.pinyin",
                    "sounds = \"pinyin\" needs the [speech.pinyin] table".into(),
                ));
            }
            // The pinyin reader writes digits with these words.
            for (field, words) in [
                ("numbers.times_ten", &n.times_ten),
                ("numbers.hundred", &n.hundred),
                ("numbers.thousand", &n.thousand),
                ("numbers.point", &n.point),
            ] {
                if words.is_empty() {
                    return Err(bad(
                        field,
                        "sounds = \"pinyin\" reads digits with its first word: give one".into(),
                    ));
                }
            }
        }
        if n.signs.is_empty() {
            return Err(bad(
                "numbers.signs",
                "no sign word: a written '-20' needs one to stand for".into(),
            ));
        }
        Ok(())
    }
}

impl NumberWords {
    pub(super) fn unit(&self, w: &str) -> Option<u64> {
        self.units.get(w).copied()
    }

    /// A word worth 10-99 of its own.
    pub(super) fn tens(&self, w: &str) -> Option<u64> {
        self.tens.get(w).copied()
    }

    pub(super) fn is(list: &[String], w: &str) -> bool {
        list.iter().any(|x| x == w)
    }

    /// Whether `w` alone may start a spoken number.
    pub(super) fn starts(&self, w: &str) -> bool {
        self.unit(w).is_some()
            || self.tens(w).is_some()
            || Self::is(&self.hundred, w)
            || Self::is(&self.thousand, w)
            || Self::is(&self.one_hundred, w)
            || Self::is(&self.one_thousand, w)
            || Self::is(&self.times_ten, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_lexicon_parses() {
        for (language, text) in SHIPPED {
            if let Err(e) = Lexicon::parse(text) {
                panic!("lexicons for {language}: {e}");
            }
        }
    }

    #[test]
    fn a_broken_lexicon_names_its_field() {
        let en = SHIPPED[0].1;
        let upper = en.replace("\"please\", \"hey\"", "\"Please\", \"hey\"");
        assert_eq!(Lexicon::parse(&upper).unwrap_err().field, "fillers.leading");
        let big = en.replace("nine = 9 }", "nine = 19 }");
        assert_eq!(Lexicon::parse(&big).unwrap_err().field, "numbers.units");
        let code = en.replace(
            "recogniser_language = \"en\"",
            "recogniser_language = \"English\"",
        );
        assert_eq!(
            Lexicon::parse(&code).unwrap_err().field,
            "speech.recogniser_language"
        );
        let unknown = format!("{en}\n[extra]\nx = 1\n");
        assert_eq!(Lexicon::parse(&unknown).unwrap_err().field, "syntax");
    }
}
