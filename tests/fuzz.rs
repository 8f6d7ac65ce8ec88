//! Fuzzing what reads outside input in the main crate (`PROPTEST_CASES=100000 cargo test
//! --release --test fuzz` for a long run): the grammar matcher and slot parser on any text,
//! the number normaliser on every spoken number below a million, and profile loading on
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

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// `n` (below a thousand) in words, British style ("one hundred and four").
fn below_thousand(n: u32, and: bool) -> String {
    let (hundreds, rest) = (n / 100, n % 100);
    let rest_words = match rest {
        0 => String::new(),
        1..=19 => ONES[rest as usize].to_string(),
        _ if rest % 10 == 0 => TENS[(rest / 10) as usize].to_string(),
        _ => format!(
            "{} {}",
            TENS[(rest / 10) as usize],
            ONES[(rest % 10) as usize]
        ),
    };
    match (hundreds, rest) {
        (0, _) => rest_words,
        (h, 0) => format!("{} hundred", ONES[h as usize]),
        (h, _) if and => format!("{} hundred and {rest_words}", ONES[h as usize]),
        (h, _) => format!("{} hundred {rest_words}", ONES[h as usize]),
    }
}

/// `n` (below a million) in words.
fn spoken(n: u32, and: bool) -> String {
    match (n / 1000, n % 1000) {
        (0, 0) => "zero".into(),
        (0, r) => below_thousand(r, and),
        (t, 0) => format!("{} thousand", below_thousand(t, and)),
        (t, r) if r < 100 && and => format!(
            "{} thousand and {}",
            below_thousand(t, and),
            below_thousand(r, and)
        ),
        (t, r) => format!(
            "{} thousand {}",
            below_thousand(t, and),
            below_thousand(r, and)
        ),
    }
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
    fn fuzz_spoken_numbers_below_a_million_are_their_value(n in 0u32..1_000_000, and in any::<bool>()) {
        let words = spoken(n, and);
        let tokens = cabin::text::tokenize(&words);
        prop_assert_eq!(tokens.len(), 1, "{} gave {:?}", words, tokens);
        prop_assert_eq!(tokens[0].number, Some(f64::from(n)), "{}", words);
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
