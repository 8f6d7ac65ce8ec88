//! What the negatives say: everyday text (Debian's `fortunes`: quotes, news items, jokes,
//! literature, conversation), near misses and sound-alikes of the phrase, the profile's own
//! sentences, and every reply Cabin can give. Each sentence belongs to one pool by a hash of
//! its words, so training, the mining of hard negatives and the held-apart measurement never
//! read the same text.

use super::espeak_phonemes;
use anyhow::{bail, Context, Result};
use cabin::profile::{Profile, SlotType};
use std::path::Path;

/// Where Debian's `fortunes` package keeps its text.
pub const FORTUNES: &str = "/usr/share/games/fortunes";

/// Which use a sentence is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Read by training (4 in 10).
    Train,
    /// Scored after each training round: its false accepts are the next round's hard
    /// negatives (2 in 10).
    Mine,
    /// Held apart: only ever measured (4 in 10).
    Held,
}

/// The pool of `sentence`, by an FNV-1a hash of its lower-cased words: the same on every machine.
pub fn pool(sentence: &str) -> Pool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in words(sentence).join(" ").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    match h % 10 {
        0..=3 => Pool::Train,
        4 | 5 => Pool::Mine,
        _ => Pool::Held,
    }
}

fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `sentence` says `phrase` (its words in order, anywhere).
pub fn contains_phrase(sentence: &str, phrase: &str) -> bool {
    let s = format!(" {} ", words(sentence).join(" "));
    s.contains(&format!(" {} ", words(phrase).join(" ")))
}

/// Everyday English sentences of 4 to 24 words from Debian's `fortunes` (scripts/setup
/// installs it), in a fixed order, none saying `phrase`.
pub fn everyday(phrase: &str) -> Result<Vec<String>> {
    everyday_in(Path::new(FORTUNES), phrase)
}

fn everyday_in(dir: &Path, phrase: &str) -> Result<Vec<String>> {
    let fix = "install Debian's `fortunes` package (scripts/setup does: apt-get install fortunes)";
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading {} ({fix})", dir.display()))?;
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        // The text files: no extension (the .dat indexes and .u8 links are not text); no
        // drawings.
        .filter(|p| p.is_file() && p.extension().is_none())
        .filter(|p| p.file_name().is_none_or(|n| n != "ascii-art"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        for fortune in text.split("\n%\n") {
            out.extend(sentences(fortune));
        }
    }
    out.retain(|s| !contains_phrase(s, phrase));
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.to_lowercase()));
    if out.len() < 1000 {
        bail!(
            "only {} sentences of everyday text in {} ({fix})",
            out.len(),
            dir.display()
        );
    }
    Ok(out)
}

/// The sentences of one fortune that read well aloud: attributions, indented verse and code
/// dropped, lines joined, cut at sentence ends.
fn sentences(fortune: &str) -> Vec<String> {
    let prose: Vec<&str> = fortune
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim_start().starts_with("--") && !l.starts_with('\t'))
        .collect();
    let joined = prose.join(" ");
    let mut out = Vec::new();
    let mut current = String::new();
    for c in joined.chars() {
        current.push(c);
        if matches!(c, '.' | '!' | '?') {
            push_sentence(&mut out, &current);
            current.clear();
        }
    }
    push_sentence(&mut out, &current);
    out
}

fn push_sentence(out: &mut Vec<String>, s: &str) {
    let s = s
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c == '-')
        .trim();
    let n = s.split_whitespace().count();
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " ,.;:!?'\"-()".contains(c));
    let letters = s.chars().filter(|c| c.is_ascii_alphabetic()).count();
    if (4..=24).contains(&n) && plain && letters * 10 >= s.len() * 7 {
        out.push(s.split_whitespace().collect::<Vec<_>>().join(" "));
    }
}

/// A phrase near the wake phrase, and how many sounds (eSpeak NG phonemes) apart the closest
/// stretch of it is.
#[derive(Debug, Clone, PartialEq)]
pub struct NearMiss {
    pub text: String,
    pub sounds_apart: usize,
}

impl NearMiss {
    /// Whether a false accept on it counts against a model. Two sounds apart ("hey kevin",
    /// "hey canon") is trained on as a negative, but the speech embedding a keyword model
    /// listens to hears such pairs nearly alike, and no driver says them often: a wake on one
    /// is not a false wake an hour of real speech would give.
    pub fn measured(&self) -> bool {
        self.sounds_apart >= 3
    }
}

/// Phrases that share a word or a sound with `phrase` and must not wake: each word alone, the
/// first word before other names, the last word after other words, the words reversed, and
/// each word swapped for words of `vocabulary` that sound like it.
pub fn near_misses(phrase: &str, vocabulary: &[String]) -> Result<Vec<NearMiss>> {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    let mut out: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    let first = words[0];
    let last = words[words.len() - 1];
    for other in [
        "kevin",
        "karen",
        "robin",
        "there",
        "you",
        "google",
        "mum",
        "guys",
        "man",
        "buddy",
        "siri",
        "alexa",
        "dad",
        "captain",
        "calvin",
        "darling",
        "everyone",
        "what",
        "look",
        "listen",
        "wait",
        "stop",
        "come on",
        "can you",
        "how are you",
        "I'm here",
    ] {
        out.push(format!("{first} {other}"));
    }
    for before in [
        "the",
        "a",
        "my",
        "nice",
        "in the",
        "open the",
        "okay",
        "hi",
        "oh",
        "say",
        "they",
        "hey there",
        "what a",
        "into the",
    ] {
        out.push(format!("{before} {last}"));
    }
    // The last word inside ordinary sentences ("the cabin lights are on").
    for (before, after) in [
        ("turn on the", "lights"),
        ("the", "is too warm"),
        ("we stayed in a", "by the lake"),
        ("clean the", "before we leave"),
        ("is the", "filter still good"),
    ] {
        out.push(format!("{before} {last} {after}"));
    }
    if words.len() > 1 {
        out.push(words.iter().rev().copied().collect::<Vec<_>>().join(" "));
    }
    // Each word swapped for its sound-alikes: "hey kevin", "hay cabin", "hey cabinet".
    for (i, word) in words.iter().enumerate() {
        for alike in sound_alikes(word, vocabulary, 12)? {
            let mut w: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            w[i] = alike;
            out.push(w.join(" "));
        }
    }
    out.retain(|s| !contains_phrase(s, phrase));
    out.sort();
    out.dedup();
    // A phrase one sound from the wake phrase ("hi cabin", "okay cabin", "hey cabinet") is
    // the phrase said a little differently: no wake word tells them apart, and none should
    // be trained or measured to.
    let target = plain_phonemes(&espeak_phonemes(&[phrase.to_string()])?[0]);
    let phonemes = espeak_phonemes(&out)?;
    Ok(out
        .into_iter()
        .zip(phonemes)
        .map(|(text, p)| NearMiss {
            text,
            sounds_apart: closest_stretch(&target, &plain_phonemes(&p)),
        })
        .filter(|m| m.sounds_apart >= 2)
        .collect())
}

/// The fewest edits between `target` and any stretch of `sounds` about its length.
fn closest_stretch(target: &[char], sounds: &[char]) -> usize {
    let n = target.len();
    let mut best = edit_distance(target, sounds);
    for len in n.saturating_sub(1)..=n + 1 {
        for start in 0..=sounds.len().saturating_sub(len) {
            let end = (start + len).min(sounds.len());
            best = best.min(edit_distance(target, &sounds[start..end]));
        }
    }
    best
}

/// Up to `n` words of `vocabulary` whose eSpeak NG phonemes are closest to `word`'s (an edit
/// distance of at most half its length), closest first, `word` itself left out.
pub fn sound_alikes(word: &str, vocabulary: &[String], n: usize) -> Result<Vec<String>> {
    let target: Vec<char> = plain_phonemes(&espeak_phonemes(&[word.to_string()])?[0]);
    if target.is_empty() {
        return Ok(Vec::new());
    }
    let candidates: Vec<String> = vocabulary
        .iter()
        .filter(|v| !v.eq_ignore_ascii_case(word))
        .filter(|v| v.len() + 3 >= word.len() && v.len() <= word.len() + 4)
        .cloned()
        .collect();
    let phonemes = espeak_phonemes(&candidates)?;
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .zip(&phonemes)
        .map(|(w, p)| (edit_distance(&target, &plain_phonemes(p)), w))
        .filter(|(d, _)| *d * 2 <= target.len())
        .collect();
    scored.sort();
    Ok(scored.into_iter().take(n).map(|(_, w)| w.clone()).collect())
}

/// eSpeak's phoneme mnemonics without stress marks and syllable separators.
fn plain_phonemes(p: &str) -> Vec<char> {
    p.chars()
        .filter(|c| !matches!(c, '\'' | ',' | '#' | '-' | ' ' | '_' | '%' | '='))
        .collect()
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, y) in b.iter().enumerate() {
            let cost = usize::from(x != y);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// The words of `sentences`, lower-cased, alphabetic, sorted and once each.
pub fn vocabulary(sentences: &[String]) -> Vec<String> {
    let mut v: Vec<String> = sentences
        .iter()
        .flat_map(|s| words(s))
        .filter(|w| w.len() > 2 && w.chars().all(|c| c.is_ascii_alphabetic()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Every reply the profile can give, in Cabin's own words: each intent's reply, questions,
/// confirmation and error replies with its slots filled by each of their values (numbers at
/// their ends and middle, a name for free text), small talk, and the stock replies.
pub fn replies(profile: &Profile) -> Vec<String> {
    let stock = &profile.lexicon.replies;
    let mut out: Vec<String> = vec![
        stock.decline.clone(),
        stock.confirm_cancelled.clone(),
        stock.give_up.clone(),
        stock.unknown_seat.clone(),
        stock.unavailable.clone(),
    ];
    out.extend(profile.small_talk.iter().map(|t| t.reply.clone()));
    for intent in &profile.intents {
        let mut templates = vec![intent.reply.clone()];
        templates.extend(intent.ask.values().cloned());
        templates.extend(intent.confirm.clone());
        templates.extend(intent.error_replies.values().cloned());
        if let Some(when) = &intent.when {
            templates.push(when.refusal.clone());
        }
        for template in templates {
            out.extend(fill(profile, &intent.slots, &template));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| !r.trim().is_empty() && seen.insert(r.clone()));
    out
}

/// `template` with each `{slot}` filled, once per value of its type (up to eight).
fn fill(
    profile: &Profile,
    slots: &std::collections::BTreeMap<String, String>,
    template: &str,
) -> Vec<String> {
    let names = cabin::profile::placeholders(template);
    let values = |name: &str| -> Vec<String> {
        let Some(ty) = slots.get(name).and_then(|t| profile.slot_types.get(t)) else {
            return vec![name.replace('_', " ")];
        };
        match ty {
            SlotType::Enum { values, .. } => values.iter().map(|v| v.spoken.clone()).collect(),
            SlotType::Integer { min, max, .. } => {
                vec![
                    min.to_string(),
                    ((min + max) / 2).to_string(),
                    max.to_string(),
                ]
            }
            SlotType::Decimal { min, max, .. } => vec![
                cabin::text::format_number(*min),
                cabin::text::format_number(((min + max) / 2.0 * 10.0).round() / 10.0),
                cabin::text::format_number(*max),
            ],
            SlotType::Text { .. } => vec!["Alex".into(), "Munich Central Station".into()],
        }
    };
    (0..8)
        .map(|variant| {
            let mut s = template.to_string();
            for name in &names {
                let v = values(name);
                if !v.is_empty() {
                    s = s.replace(&format!("{{{name}}}"), &v[variant % v.len()]);
                }
            }
            s
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentence_belongs_to_one_pool_whatever_its_case_and_punctuation() {
        assert_eq!(pool("Open the window."), pool("open the window"));
        let pools: Vec<Pool> = (0..200).map(|i| pool(&format!("sentence {i}"))).collect();
        for p in [Pool::Train, Pool::Mine, Pool::Held] {
            assert!(pools.iter().filter(|x| **x == p).count() > 20, "{p:?}");
        }
    }

    #[test]
    fn fortunes_are_read_as_sentences_without_attributions_or_verse() {
        let s = sentences(
            "The best way to predict the future is to invent it.  Or so they say!\n\t-- Alan Kay\n",
        );
        assert_eq!(
            s,
            vec![
                "The best way to predict the future is to invent it.",
                "Or so they say!"
            ]
        );
        assert!(sentences("\tindented verse line one is dropped\n").is_empty());
        assert!(sentences("x = 1; y = 2; z = 3; w = 4; v = 5;").is_empty());
    }

    #[test]
    fn phonemes_that_differ_by_one_sound_are_one_edit_apart() {
        let a: Vec<char> = "kabIn".chars().collect();
        let b: Vec<char> = "kEvIn".chars().collect();
        assert_eq!(edit_distance(&a, &b), 2);
        assert_eq!(edit_distance(&a, &a), 0);
        assert_eq!(
            plain_phonemes("k'abI#n@t"),
            "kabIn@t".chars().collect::<Vec<_>>()
        );
    }

    #[test]
    fn near_misses_share_words_with_the_phrase_but_are_not_it() {
        let texts = |m: Vec<NearMiss>| m.into_iter().map(|m| m.text).collect::<Vec<_>>();
        let misses = texts(near_misses("hey aurora", &[]).unwrap());
        assert!(misses.contains(&"hey".to_string()));
        assert!(misses.contains(&"the aurora".to_string()));
        assert!(misses.contains(&"aurora hey".to_string()));
        assert!(misses.iter().all(|m| !contains_phrase(m, "hey aurora")));
        assert!(contains_phrase(
            "Hey, Aurora! open the window",
            "hey aurora"
        ));
        // One sound away is the phrase itself, said differently.
        let vocabulary: Vec<String> = ["kevin", "cabinet", "calvin", "hay", "raven"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        let near = near_misses("hey cabin", &vocabulary).unwrap();
        assert!(!near
            .iter()
            .find(|m| m.text == "hey kevin")
            .unwrap()
            .measured());
        assert!(near
            .iter()
            .find(|m| m.text == "the cabin")
            .unwrap()
            .measured());
        let misses = texts(near);
        for close in ["hi cabin", "okay cabin", "hay cabin", "hey cabinet"] {
            assert!(!misses.contains(&close.to_string()), "{close}: {misses:?}");
        }
        for apart in ["hey kevin", "hey calvin", "the cabin", "cabin hey"] {
            assert!(misses.contains(&apart.to_string()), "{apart}: {misses:?}");
        }
    }

    #[test]
    fn a_stretch_one_sound_off_anywhere_is_close() {
        let p = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(closest_stretch(&p("heIkabIn"), &p("oUkeIkabIn")), 1);
        assert_eq!(closest_stretch(&p("heIkabIn"), &p("heIkabIn@t")), 0);
        assert_eq!(closest_stretch(&p("heIkabIn"), &p("heIkEvIn")), 2);
    }

    #[test]
    fn every_reply_of_the_default_profile_is_spelled_out_with_its_values() {
        let p = Profile::load_or_default(None).unwrap();
        let r = replies(&p);
        assert!(r.iter().all(|s| !s.contains('{')), "{r:?}");
        assert!(r.iter().any(|s| s.contains("rear left")), "{r:?}");
        assert!(r.len() > 100, "{}", r.len());
    }
}
