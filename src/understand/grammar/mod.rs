//! The grammar fast path: profile templates compiled once into plain sequences, matched
//! against normalised speech in microseconds. A sentence matches only if every word is
//! accounted for, or every word the profile knows with at most two others said about what
//! they name ("the bedroom lights"), so the fast path cannot "guess" at chit-chat or
//! questions.

use crate::profile::template::{Element, Template};
use crate::profile::{Profile, SlotType, SlotValue, SPEAKER};
use crate::text::{join_words, tokenize_with, Lexicon, Token};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A confident parse of an utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Index of the matched group: into `Profile::intents` (or `Profile::small_talk` for
    /// the small-talk matcher).
    pub intent: usize,
    pub slots: Vec<(String, SlotValue)>,
    /// 1.0 when every word is a fixed word, enum or number; lower the more words a free-text
    /// slot had to swallow.
    pub score: f32,
}

#[derive(Debug)]
enum SlotMatcher {
    Enum(Vec<(String, String, Vec<String>)>),
    /// `unit`: the type's unit word ("degrees"), or empty. `digits`: the range a value said
    /// digit by digit or without its point is read into (see [`digit_readings`]). `words`:
    /// values said in words ("halfway"), longest first.
    Number {
        integer: bool,
        unit: String,
        digits: Option<(f64, f64)>,
        words: Vec<(f64, Vec<String>)>,
    },
    Text {
        max_words: usize,
    },
}

#[derive(Debug)]
enum Step {
    Literal(String),
    Slot(String, Arc<SlotMatcher>),
}

#[derive(Debug)]
struct Sequence {
    intent: usize,
    steps: Vec<Step>,
}

/// Templates of a whole profile, compiled for matching.
#[derive(Debug)]
pub struct Matcher {
    sequences: Vec<Sequence>,
    /// Sequences by their first literal word, so a sentence only meets its candidates.
    by_first_word: HashMap<String, Vec<usize>>,
    /// Sequences that open with a slot: tried for every sentence.
    slot_first: Vec<usize>,
    leading: Vec<Vec<String>>,
    trailing: Vec<Vec<String>>,
    slot_matchers: HashMap<String, Arc<SlotMatcher>>,
    /// Every word of the templates, the enum values and the polite words around them; None
    /// where every word must be matched (small talk: its replies are for what was said).
    known: Option<HashSet<String>>,
    /// The profile language's words: numbers, fillers, what never starts a name.
    lexicon: Arc<Lexicon>,
}

/// How many words the profile does not know a sentence may have and still be matched on the
/// words it does know ([`Matcher::match_known_words`]).
const MAX_UNKNOWN: usize = 2;
/// The shortest known word that [`form_of_known`] finds inside another: "bit" in "bits", not
/// "a" in "as".
const MIN_STEM: usize = 3;

impl Matcher {
    /// The matcher of the profile's intents; `Match::intent` indexes `Profile::intents`.
    pub fn new(profile: &Profile) -> Matcher {
        let mut m = Self::build(
            profile,
            profile.intents.iter().map(|i| i.sentences.as_slice()),
        );
        m.known = Some(m.words());
        m
    }

    /// Every word of the templates, the enum values, the values said in words and the polite
    /// words around them.
    fn words(&self) -> HashSet<String> {
        let mut known: HashSet<String> = self
            .leading
            .iter()
            .chain(&self.trailing)
            .flatten()
            .cloned()
            .collect();
        known.extend(self.literals().map(|(_, w)| w.to_string()));
        for m in self.slot_matchers.values() {
            match m.as_ref() {
                SlotMatcher::Enum(values) => known.extend(
                    values
                        .iter()
                        .flat_map(|(_, _, words)| words.iter().cloned()),
                ),
                SlotMatcher::Number { words, .. } => {
                    known.extend(words.iter().flat_map(|(_, w)| w.iter().cloned()))
                }
                SlotMatcher::Text { .. } => {}
            }
        }
        known
    }

    /// The fixed words of every template expansion, each with the index of its intent.
    pub fn literals(&self) -> impl Iterator<Item = (usize, &str)> {
        self.sequences.iter().flat_map(|s| {
            s.steps.iter().filter_map(move |step| match step {
                Step::Literal(w) => Some((s.intent, w.as_str())),
                Step::Slot(..) => None,
            })
        })
    }

    /// The matcher of the profile's small talk; `Match::intent` indexes `Profile::small_talk`.
    pub fn small_talk(profile: &Profile) -> Matcher {
        Matcher::build(
            profile,
            profile.small_talk.iter().map(|s| s.sentences.as_slice()),
        )
    }

    fn build<'a>(profile: &Profile, groups: impl Iterator<Item = &'a [Template]>) -> Matcher {
        let lexicon = profile.lexicon.clone();
        let norms = |text: &str| -> Vec<String> {
            tokenize_with(text, &lexicon.numbers)
                .into_iter()
                .map(|t| t.norm)
                .collect()
        };
        let slot_matchers: HashMap<String, Arc<SlotMatcher>> = profile
            .slot_types
            .iter()
            .map(|(name, ty)| {
                let m = match ty {
                    SlotType::Enum { values, zones } => {
                        let mut synonyms: Vec<(String, String, Vec<String>)> = values
                            .iter()
                            .flat_map(|v| {
                                v.synonyms
                                    .iter()
                                    .map(|s| (v.key.clone(), v.spoken.clone(), s.clone()))
                            })
                            .collect();
                        if *zones {
                            for words in &lexicon.references.speaker {
                                let toks = norms(words);
                                let spoken = lexicon.references.speaker_spoken.clone();
                                synonyms.push((SPEAKER.to_string(), spoken, toks));
                            }
                        }
                        SlotMatcher::Enum(synonyms)
                    }
                    SlotType::Integer { unit, words, .. } => SlotMatcher::Number {
                        integer: true,
                        unit: unit.clone(),
                        digits: None,
                        words: words.iter().map(|(v, w)| (*v as f64, w.clone())).collect(),
                    },
                    SlotType::Decimal {
                        unit,
                        min,
                        max,
                        digits,
                    } => SlotMatcher::Number {
                        integer: false,
                        unit: unit.clone(),
                        digits: digits.then_some((*min, *max)),
                        words: Vec::new(),
                    },
                    SlotType::Text { max_words, .. } => SlotMatcher::Text {
                        max_words: *max_words,
                    },
                };
                (name.clone(), Arc::new(m))
            })
            .collect();

        let mut sequences = Vec::new();
        for (i, templates) in groups.enumerate() {
            for t in templates {
                // Validation already expanded every template, so this cannot fail.
                for expansion in t.expand_with(&lexicon.numbers).unwrap_or_default() {
                    let steps = expansion
                        .into_iter()
                        .map(|e| match e {
                            Element::Literal(w) => Step::Literal(w),
                            Element::Slot(s) => {
                                let m = slot_matchers[&s.type_name].clone();
                                Step::Slot(s.name, m)
                            }
                        })
                        .collect();
                    sequences.push(Sequence { intent: i, steps });
                }
            }
        }
        let mut by_first_word: HashMap<String, Vec<usize>> = HashMap::new();
        let mut slot_first = Vec::new();
        for (i, s) in sequences.iter().enumerate() {
            match s.steps.first() {
                Some(Step::Literal(w)) => by_first_word.entry(w.clone()).or_default().push(i),
                _ => slot_first.push(i),
            }
        }
        let phrases = |list: &[String]| -> Vec<Vec<String>> {
            let mut v: Vec<Vec<String>> = list.iter().map(|p| norms(p)).collect();
            v.sort_by_key(|p| std::cmp::Reverse(p.len()));
            v
        };
        let mut leading = phrases(&lexicon.fillers.leading);
        for name in std::iter::once(&profile.persona.name).chain(&profile.persona.wake_words) {
            let toks = norms(name);
            if !toks.is_empty() {
                leading.push(toks);
            }
        }
        leading.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Matcher {
            sequences,
            by_first_word,
            slot_first,
            leading,
            trailing: phrases(&lexicon.fillers.trailing),
            slot_matchers,
            known: None,
            lexicon,
        }
    }

    /// The words of the profile's language the matcher reads by.
    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// `text`'s tokens, numbers read in the profile language's words.
    pub fn tokenize(&self, text: &str) -> Vec<Token> {
        tokenize_with(text, &self.lexicon.numbers)
    }

    /// How many plain sentences the matcher holds.
    pub fn sentence_count(&self) -> usize {
        self.sequences.len()
    }

    /// Matches an utterance; None when no template accounts for every word, or for every
    /// word the profile knows ([`Matcher::match_known_words`]).
    pub fn match_text(&self, text: &str) -> Option<Match> {
        let tokens = self.tokenize(text);
        let tokens = self.strip_fillers(&tokens);
        if tokens.is_empty() {
            return None;
        }
        self.match_tokens(tokens)
            .or_else(|| self.match_known_words(tokens))
    }

    /// A match of the words the profile knows, where up to [`MAX_UNKNOWN`] others each come
    /// before a known word, as words said about what it names do ("turn off my desk lamp", "dim
    /// the bedroom lights"): people name things by where they are and what they look like, and
    /// no profile can list every such word. A template still accounts for every known word, so
    /// a request about something the profile has no word for ("turn on the robot vacuum", "open
    /// the garage") leaves too little to match, and words after the command ("go home later
    /// maybe", "the lights in my house") are not dropped, nor is another form of a known word
    /// ([`form_of_known`]). Never into a free-text slot: that takes unknown words already.
    fn match_known_words(&self, tokens: &[Token]) -> Option<Match> {
        let known = self.known.as_ref()?;
        let is_known = |t: &Token| t.number.is_some() || known.contains(&t.norm);
        let unknown = tokens.iter().filter(|t| !is_known(t)).count();
        if tokens.iter().any(|t| {
            !is_known(t) && form_of_known(&t.norm, &self.lexicon.references.word_endings, known)
        }) {
            return None;
        }
        let modifiers = tokens
            .iter()
            .zip(tokens.iter().skip(1).map(Some).chain([None]))
            .all(|(t, next)| is_known(t) || next.is_some_and(is_known));
        if unknown > MAX_UNKNOWN || !modifiers {
            return None;
        }
        let said: Vec<Token> = tokens.iter().filter(|t| is_known(t)).cloned().collect();
        let bare: Vec<Token> = said
            .iter()
            .filter(|t| !self.lexicon.references.determiners.contains(&t.norm))
            .cloned()
            .collect();
        let tries = [(unknown > 0).then_some(said), Some(bare)];
        tries
            .iter()
            .flatten()
            .filter(|words| words.len() >= 2 && words.len() < tokens.len())
            .find_map(|words| self.match_tokens(words).filter(|m| m.score >= 1.0))
    }

    /// Whether `text` is a whole command: every word matched by one template, none of them
    /// taken by a free-text slot (a destination or a name may go on after a pause) and none
    /// left over ("open the window and" is not whole). The end of a turn waits less for one.
    pub fn is_whole_command(&self, text: &str) -> bool {
        let tokens = self.tokenize(text);
        let tokens = self.strip_fillers(&tokens);
        !tokens.is_empty() && self.match_tokens(tokens).is_some_and(|m| m.score >= 1.0)
    }

    /// The best template match of all of `tokens`.
    fn match_tokens(&self, tokens: &[Token]) -> Option<Match> {
        let mut best: Option<Match> = None;
        let candidates = self
            .by_first_word
            .get(&tokens[0].norm)
            .into_iter()
            .flatten()
            .chain(&self.slot_first);
        for &i in candidates {
            let seq = &self.sequences[i];
            let mut caps = Vec::new();
            if let Some(text_words) = match_steps(&seq.steps, tokens, &self.lexicon, &mut caps) {
                let score = 1.0 - 0.5 * text_words as f32 / tokens.len() as f32;
                if best.as_ref().is_none_or(|b| score > b.score) {
                    best = Some(Match {
                        intent: seq.intent,
                        slots: caps,
                        score,
                    });
                }
            }
        }
        best
    }

    /// The words of `text` without the polite and addressing words around them ("hey olly
    /// could you … please"), as they were written: what the meaning is in.
    pub fn core_words(&self, text: &str) -> String {
        let tokens = self.tokenize(text);
        let core = self.strip_fillers(&tokens);
        join_words(core.iter().map(|t| t.raw.as_str()))
    }

    fn strip_fillers<'t>(&self, mut toks: &'t [Token]) -> &'t [Token] {
        let starts = |toks: &[Token], p: &[String]| {
            toks.len() > p.len() && toks.iter().zip(p).all(|(t, w)| t.norm == *w)
        };
        let ends = |toks: &[Token], p: &[String]| {
            toks.len() > p.len()
                && toks[toks.len() - p.len()..]
                    .iter()
                    .zip(p)
                    .all(|(t, w)| t.norm == *w)
        };
        'lead: loop {
            for p in &self.leading {
                if starts(toks, p) {
                    toks = &toks[p.len()..];
                    continue 'lead;
                }
            }
            break;
        }
        'trail: loop {
            for p in &self.trailing {
                if ends(toks, p) {
                    toks = &toks[..toks.len() - p.len()];
                    continue 'trail;
                }
            }
            break;
        }
        toks
    }
}

/// Matches `steps` against all of `toks`; on success returns how many words free-text slots
/// took, with the captures in `caps`.
fn match_steps(
    steps: &[Step],
    toks: &[Token],
    lexicon: &Lexicon,
    caps: &mut Vec<(String, SlotValue)>,
) -> Option<usize> {
    let Some((step, rest)) = steps.split_first() else {
        return toks.is_empty().then_some(0);
    };
    match step {
        Step::Literal(w) => {
            let t = toks.first()?;
            if t.norm == *w {
                match_steps(rest, &toks[1..], lexicon, caps)
            } else {
                None
            }
        }
        Step::Slot(name, m) => {
            let is_text = matches!(m.as_ref(), SlotMatcher::Text { .. });
            try_slot(m, toks, lexicon, |value, used| {
                caps.push((name.clone(), value));
                let r = match_steps(rest, &toks[used..], lexicon, caps);
                if r.is_none() {
                    caps.pop();
                }
                r.map(|n| n + if is_text { used } else { 0 })
            })
        }
    }
}

/// Tries each way a slot can start at `toks` (a value and the tokens it takes, shortest
/// first) until `f` accepts one; allocates nothing for values `f` rejects early.
fn try_slot<R>(
    m: &SlotMatcher,
    toks: &[Token],
    lexicon: &Lexicon,
    mut f: impl FnMut(SlotValue, usize) -> Option<R>,
) -> Option<R> {
    match m {
        SlotMatcher::Enum(values) => values
            .iter()
            .filter(|(_, _, syn)| starts_with(toks, syn))
            .find_map(|(key, spoken, syn)| {
                f(
                    SlotValue::Enum {
                        key: key.clone(),
                        spoken: spoken.clone(),
                    },
                    syn.len(),
                )
            }),
        SlotMatcher::Number {
            digits: Some(range),
            ..
        } => digit_readings(toks, *range, &lexicon.numbers.zero_digit)
            .into_iter()
            .find_map(|(v, used)| f(SlotValue::Number(v), used)),
        SlotMatcher::Number { integer, words, .. } => toks
            .first()
            .and_then(|t| t.number)
            .filter(|v| !(*integer && v.fract() != 0.0))
            .and_then(|v| f(SlotValue::Number(v), 1))
            .or_else(|| {
                words
                    .iter()
                    .filter(|(_, w)| starts_with(toks, w))
                    .find_map(|(v, w)| f(SlotValue::Number(*v), w.len()))
            }),
        SlotMatcher::Text { max_words } => {
            if toks
                .first()
                .is_none_or(|t| lexicon.references.not_names.contains(&t.norm))
            {
                return None;
            }
            (1..=(*max_words).min(toks.len())).find_map(|n| {
                f(
                    SlotValue::Text(join_words(toks[..n].iter().map(|t| t.raw.as_str()))),
                    n,
                )
            })
        }
    }
}

/// Whether `word` is a known word with one of the language's `endings` ("seats", "heated"):
/// another form of something the profile names, not a word said about it. Dropping it changes
/// what was asked ("turn on the seats heating" is not "turn on the heating").
fn form_of_known(word: &str, endings: &[String], known: &HashSet<String>) -> bool {
    endings.iter().any(|e| {
        word.strip_suffix(e.as_str())
            .is_some_and(|stem| stem.chars().count() >= MIN_STEM && known.contains(stem))
    })
}

/// Whether `toks` open with `words` (normalised).
fn starts_with(toks: &[Token], words: &[String]) -> bool {
    toks.len() >= words.len() && toks.iter().zip(words).all(|(t, w)| t.norm == *w)
}

/// The ways a number in `range` may be said at `toks`, with the tokens each takes, in the
/// order they are tried: as one number in range ("ninety three point seven"); digit by digit,
/// the point placed before the last digit when none is said ("nine three seven" 93.7, "one oh
/// one point one" 101.1); a whole number read without its point ("nine hundred and seventy
/// one" 97.1); and last the number as said, out of range, so that the reply can say so.
/// `zero`: the words for a zero digit besides the number ("oh").
fn digit_readings(toks: &[Token], (min, max): (f64, f64), zero: &[String]) -> Vec<(f64, usize)> {
    let Some(said) = toks.first().and_then(|t| t.number) else {
        return Vec::new();
    };
    let fits = |v: f64| (min..=max).contains(&v);
    let mut readings = Vec::new();
    if fits(said) {
        readings.push((said, 1));
    }
    // One digit a token; a number with a point ("one point one") may only end the run.
    let mut digits = String::new();
    let mut runs = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let single_word = !t.raw.contains(' ');
        match t.number {
            Some(v) if single_word && v.fract() == 0.0 && (0.0..10.0).contains(&v) => {
                digits.push(char::from(b'0' + v as u8))
            }
            Some(v) if v.fract() != 0.0 && (0.0..10.0).contains(&v.trunc()) && i > 0 => {
                digits.push_str(&format_decimal(v));
                runs.push((digits.clone(), i + 1));
                break;
            }
            None if zero.contains(&t.norm) && i > 0 => digits.push('0'),
            _ => break,
        }
        if i > 0 {
            runs.push((digits.clone(), i + 1));
        }
    }
    for (run, used) in runs.into_iter().rev() {
        let text = if run.contains('.') {
            run
        } else {
            format!("{}.{}", &run[..run.len() - 1], &run[run.len() - 1..])
        };
        if let Some(v) = text.parse::<f64>().ok().filter(|v| fits(*v)) {
            readings.push((v, used));
        }
    }
    if said.fract() == 0.0 && fits(said / 10.0) {
        readings.push((said / 10.0, 1));
    }
    if !fits(said) {
        readings.push((said, 1));
    }
    readings
}

/// A number's digits as written, without a trailing ".0" ("1.1").
fn format_decimal(v: f64) -> String {
    let s = format!("{v}");
    s.trim_end_matches(".0").to_string()
}

impl Matcher {
    /// Reads a bare slot value of type `type_name` from an answer or follow-up ("the rear
    /// left one", "twenty two degrees"): filler words around it are dropped, and the rest must
    /// be exactly one value. `unit` words of the type are fillers too.
    pub fn parse_slot_value(&self, type_name: &str, unit: &str, text: &str) -> Option<SlotValue> {
        let m = self.slot_matchers.get(type_name)?;
        let toks = self.tokenize(text);
        let numeric = matches!(m.as_ref(), SlotMatcher::Number { .. });
        let fillers = &self.lexicon.fillers.around_values;
        // "one" is a number to the tokenizer, but a filler in "the rear left one".
        let filler = |t: &Token| match t.number {
            Some(_) => !numeric && fillers.contains(&t.raw.to_lowercase()),
            None => fillers.contains(&t.norm) || (!unit.is_empty() && t.norm == unit),
        };
        let start = toks.iter().position(|t| !filler(t))?;
        let end = toks.iter().rposition(|t| !filler(t))? + 1;
        let core = &toks[start..end];
        try_slot(m, core, &self.lexicon, |v, used| {
            (used == core.len()).then_some(v)
        })
    }

    /// The values of enum or number slot type `type_name` that words of `text` say, anywhere
    /// in it ("seat heater on maximum" holds `heat_level` high). A number followed by another
    /// type's unit is that type's ("thirty degrees" is no percentage). A text slot's values are
    /// any words, so none are reported for one.
    pub fn values_in(&self, type_name: &str, text: &str) -> Vec<SlotValue> {
        let Some(m) = self.slot_matchers.get(type_name) else {
            return Vec::new();
        };
        let own_unit = match m.as_ref() {
            SlotMatcher::Text { .. } => return Vec::new(),
            SlotMatcher::Number { unit, .. } => unit.as_str(),
            SlotMatcher::Enum(_) => "",
        };
        let other_unit = |t: &Token| {
            self.slot_matchers.values().any(|m| {
                matches!(m.as_ref(), SlotMatcher::Number { unit, .. }
                    if !unit.is_empty() && *unit != own_unit && t.norm == *unit)
            })
        };
        let toks = self.tokenize(text);
        (0..toks.len())
            .filter_map(|i| {
                let value = try_slot(m, &toks[i..], &self.lexicon, |v, _| Some(v))?;
                let unit_after = matches!(value, SlotValue::Number(_))
                    && toks.get(i + 1).is_some_and(other_unit);
                (!unit_after).then_some(value)
            })
            .collect()
    }
}
