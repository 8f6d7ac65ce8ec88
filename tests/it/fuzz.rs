//! Fuzzing what reads outside input in the main crate (`PROPTEST_CASES=100000 cargo test
//! --release --test it fuzz::` for a long run): the grammar matcher and slot parser on any text,
//! the number normaliser on every spoken number below a million (exhaustively), and profile loading on
//! mangled profiles. Each is refused with a reason or read, never a panic.

use cabin::profile::{Profile, DEFAULT_PROFILE_TOML};
use cabin::understand::grammar::Matcher;
use proptest::prelude::*;
use std::sync::LazyLock;

static DEFAULT: LazyLock<(Profile, Matcher)> = LazyLock::new(|| {
    let p = Profile::embedded_default();
    let m = Matcher::new(&p);
    (p, m)
});

/// Words the matcher and the number normaliser treat specially, and a few that break naive
/// parsers (huge numbers, several decimal points, symbols, scripts, NUL).
const PIECES: &[&str] = &[
    "twenty",
    "one",
    "and",
    "a",
    "half",
    "point",
    "oh",
    "hundred",
    "thousand",
    "nine",
    "9",
    "99999999999999999999",
    "1.2.3",
    ".5",
    "5.",
    "%",
    "°",
    "°C",
    "-",
    "'",
    "’",
    "…",
    "²",
    "٣",
    "é",
    "ß",
    "🚗",
    "\u{0}",
    "\t",
    "my",
    "the",
    "call",
    "open",
    "window",
    "set",
    "temperature",
    "to",
    "degrees",
    "percent",
    "{",
    "}",
    "[",
    "(",
    "|",
    ",",
    "!!!",
    "",
    "navigate",
    "me",
    "rear",
    "left",
    "please",
    "jarvis",
    "lights",
    "volume",
    "station",
    "fm",
    "quarter",
];

fn utterance() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        (
            proptest::collection::vec(proptest::sample::select(PIECES), 0..12),
            any::<bool>()
        )
            .prop_map(|(words, glued)| words.join(if glued { "" } else { " " })),
    ]
}

/// `n` in words as people say it: as Cabin's voice reads it ("one hundred four"), or British
/// style with "and" ("one hundred and four", "two thousand and five").
fn spoken(n: u32, and: bool) -> String {
    let words = cabin::speak::speakable::cardinal(u64::from(n));
    if !and {
        return words;
    }
    let words: Vec<&str> = words.split(' ').collect();
    let mut out = Vec::new();
    for (i, word) in words.iter().enumerate() {
        out.push(*word);
        let rest = &words[i + 1..];
        // "and" goes before the tens and ones of a group: never before "thousand"
        // ("three hundred thousand", not "three hundred and thousand").
        let before_tens = (*word == "hundred" && rest.first() != Some(&"thousand"))
            || (*word == "thousand" && !rest.contains(&"hundred"));
        if before_tens && !rest.is_empty() {
            out.push("and");
        }
    }
    out.join(" ")
}

/// Every number below a million, in both styles: exhaustive, so the same on every run.
#[test]
fn spoken_numbers_below_a_million_are_their_value() {
    let mut wrong = Vec::new();
    for n in 0u32..1_000_000 {
        for and in [false, true] {
            let words = spoken(n, and);
            let tokens = cabin::text::tokenize(&words);
            if tokens.len() != 1 || tokens[0].number != Some(f64::from(n)) {
                wrong.push(format!("{words:?} gave {tokens:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong, first: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[test]
fn the_british_and_never_comes_before_thousand() {
    assert_eq!(spoken(300_000, true), "three hundred thousand");
    assert_eq!(spoken(300_005, true), "three hundred thousand and five");
    assert_eq!(spoken(2_005, true), "two thousand and five");
    assert_eq!(spoken(104, true), "one hundred and four");
}

proptest! {
    #[test]
    fn fuzz_any_text_is_matched_or_not_without_panic(text in utterance(), ty in 0usize..64) {
        let (p, m) = &*DEFAULT;
        let _ = m.match_text(&text);
        let types: Vec<&String> = p.slot_types.keys().collect();
        let _ = m.parse_slot_value(types[ty % types.len()], "degrees", &text);
    }

    #[test]
    fn fuzz_mangled_profiles_load_or_are_refused_with_a_reason(
        cuts in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..4, utterance()), 1..4),
    ) {
        let mut lines: Vec<String> = DEFAULT_PROFILE_TOML.lines().map(str::to_string).collect();
        for (at, how, text) in cuts {
            let i = at.index(lines.len());
            match how {
                0 => { lines.remove(i); }
                1 => { let l = lines[i].clone(); lines.insert(i, l); }
                // A value replaced: after `=`, whatever the text is.
                2 => if let Some((key, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{key}= {text}");
                },
                _ => lines[i] = text,
            }
        }
        let text = lines.join("\n");
        if let Err(e) = Profile::parse(&text, "fuzzed.toml") {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
