//! Text normalisation shared by templates and utterances: both go through the same
//! tokenizer so that a template literal and a spoken word always compare equal.

use super::lexicon::{Lexicon, NumberWords};

/// One normalised word of an utterance or template.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Lower-case form used for matching; for a number, its canonical digits ("21.5").
    pub norm: String,
    /// The words as written, for free-text slots ("Munich Central").
    pub raw: String,
    /// The value when this token is a number, spoken or written.
    pub number: Option<f64>,
}

impl Token {
    fn word(norm: &str, raw: &str) -> Self {
        Token {
            norm: norm.to_string(),
            raw: raw.to_string(),
            number: None,
        }
    }
}

/// Splits text into normalised tokens: lower case, punctuation dropped, apostrophes
/// removed ("what's" → "whats"), "%" → "percent", "°"/"°C" → "degrees", and spoken
/// numbers folded into one number token ("twenty one and a half" → 21.5), with their sign
/// ("minus twenty", "-20" and "−20" are -20).
/// English number words: for text read where no profile is at hand.
pub fn tokenize(text: &str) -> Vec<Token> {
    tokenize_with(text, &Lexicon::english().numbers)
}

/// [`tokenize`] with the number words of a profile's language.
pub fn tokenize_with(text: &str, numbers: &NumberWords) -> Vec<Token> {
    let words = split_words(text, numbers);
    fold_numbers(&words, numbers)
}

/// A word before number folding: its normalised and its original spelling.
struct Word {
    norm: String,
    raw: String,
}

/// The symbols that make a number negative when they open it ("-20", "−3"); elsewhere a
/// hyphen joins words ("rear-left").
const SIGN_SYMBOLS: &[char] = &['-', '\u{2212}'];

/// A Han ideograph: Chinese is written without spaces, so each one is a word of its own and
/// a template's characters meet the driver's whatever the spacing.
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF)
}

/// Words as written, joined as the script writes them: with a space, but none between two
/// Han ideographs ("上海 虹桥" stays "上海虹桥").
pub fn join_words<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for w in words {
        let glued = out.chars().last().is_some_and(is_han) && w.chars().next().is_some_and(is_han);
        if !out.is_empty() && !glued {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Full-width forms (Chinese input methods type "２１％" and "，") as their ASCII ones, and
/// Han ideographs set apart by spaces.
fn widen(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        let c = match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            0x3001 | 0x3002 => ' ',
            _ => c,
        };
        if is_han(c) {
            out.push(' ');
            out.push(c);
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// The words of `text`; a sign symbol becomes the first of the sign words of `numbers`.
fn split_words(text: &str, numbers: &NumberWords) -> Vec<Word> {
    let mut words = Vec::new();
    let text = widen(text);
    for chunk in text.split_whitespace() {
        // A sign that opens a written number is a word of its own: "-20" is "minus 20".
        let mut chars = chunk.chars();
        let chunk = match (chars.next(), chars.clone().next()) {
            (Some(sign), Some(next)) if SIGN_SYMBOLS.contains(&sign) && next.is_ascii_digit() => {
                words.push(Word {
                    norm: numbers.signs[0].clone(),
                    raw: sign.to_string(),
                });
                chars.as_str()
            }
            _ => chunk,
        };
        // "°C"/"°" and "%" become words of their own; hyphens and slashes separate words.
        let expanded = chunk
            .replace("°C", " degrees ")
            .replace("°c", " degrees ")
            .replace('°', " degrees ")
            .replace('%', " percent ")
            .replace(['-', '/', '_'], " ");
        for piece in expanded.split_whitespace() {
            let raw = trim_punctuation(piece);
            if raw.is_empty() {
                continue;
            }
            let norm: String = raw
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '.' || *c == ',')
                .collect::<String>()
                .to_lowercase();
            // A decimal point or comma only survives inside a written number ("21.5", "1,000").
            let norm = if is_written_number(&norm) {
                norm.replace(',', "")
            } else {
                norm.replace(['.', ','], "")
            };
            if !norm.is_empty() {
                words.push(Word {
                    norm,
                    raw: raw.to_string(),
                });
            }
        }
    }
    words
}

fn trim_punctuation(s: &str) -> &str {
    s.trim_matches(|c: char| !c.is_alphanumeric())
}

fn is_written_number(s: &str) -> bool {
    let t = s.replace(',', "");
    !t.is_empty()
        && t.chars().all(|c| c.is_ascii_digit() || c == '.')
        && t.chars().filter(|c| *c == '.').count() <= 1
        && t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && t.parse::<f64>().is_ok()
}

/// Reads the longest spoken or written number starting at `words[start]`, in the words of
/// `n`. Returns the value and how many words it used.
fn read_number(words: &[Word], start: usize, n: &NumberWords) -> Option<(f64, usize)> {
    let w = |i: usize| words.get(i).map(|x| x.norm.as_str());
    let is = |list: &[String], i: usize| w(i).is_some_and(|x| NumberWords::is(list, x));
    let mut i = start;
    let whole: f64 = if let Some(first) = w(i).filter(|s| is_written_number(s)) {
        i += 1;
        first.parse::<f64>().ok()?
    } else {
        // Spoken integer part: total (thousands) + chunk (below one thousand).
        let mut total: u64 = 0;
        let mut chunk: u64 = 0;
        let mut last_end = start; // index after the last word that completed a valid number
        let mut seen = false;
        // The last word made tens of a digit ("二十", "十"): a digit may follow.
        let mut after_ten = false;
        // "a hundred", "a thousand"
        if is(&n.article, i) && (is(&n.hundred, i + 1) || is(&n.thousand, i + 1)) {
            chunk = 1;
            i += 1;
        }
        while let Some(word) = w(i) {
            let tail = chunk % 100;
            let mut ten_said = false;
            if let Some(u) = n.unit(word) {
                // After a tens word ("twenty one") or at the start of a chunk.
                let after_tens = (tail >= 20 && tail.is_multiple_of(10)) || after_ten;
                if !(tail == 0 && !(seen && chunk == 0 && total == 0) || after_tens) {
                    break;
                }
                chunk += u;
            } else if let Some(t) = n.tens(word) {
                if tail != 0 || (seen && chunk == 0 && total == 0) {
                    break;
                }
                chunk += t;
            } else if NumberWords::is(&n.times_ten, word) {
                // "二十" (the digit before, as tens) or "十" alone (ten).
                if tail >= 10 || (seen && chunk == 0 && total == 0) {
                    break;
                }
                chunk += if tail == 0 { 10 } else { tail * 9 };
                ten_said = true;
            } else if NumberWords::is(&n.plus_ten, word) {
                // "dua belas": the digit before, plus ten.
                if !(1..=9).contains(&tail) {
                    break;
                }
                chunk += 10;
            } else if NumberWords::is(&n.hundred, word) {
                if !(1..=9).contains(&chunk) {
                    break;
                }
                chunk *= 100;
            } else if NumberWords::is(&n.one_hundred, word) {
                if chunk != 0 || (seen && total == 0) {
                    break;
                }
                chunk = 100;
            } else if NumberWords::is(&n.thousand, word) {
                if chunk == 0 || total != 0 {
                    break;
                }
                total = chunk * 1000;
                chunk = 0;
            } else if NumberWords::is(&n.one_thousand, word) {
                if seen {
                    break;
                }
                total = 1000;
            } else if NumberWords::is(&n.and, word)
                && seen
                && chunk.is_multiple_of(100)
                && (chunk >= 100 || total > 0)
                && w(i + 1).is_some_and(|x| n.unit(x).is_some() || n.tens(x).is_some())
            {
                // "one hundred and five"
                i += 1;
                continue;
            } else {
                break;
            }
            after_ten = ten_said;
            seen = true;
            i += 1;
            last_end = i;
        }
        if !seen {
            return None;
        }
        i = last_end;
        (total + chunk) as f64
    };

    let mut value = whole;
    // Fractions: "point five", "and a half", "and a quarter".
    if is(&n.point, i) {
        let mut digits = String::new();
        let mut j = i + 1;
        while let Some(d) = w(j) {
            if let Some(u) = n.unit(d) {
                digits.push(char::from(b'0' + u as u8));
            } else if NumberWords::is(&n.zero_after_point, d) {
                digits.push('0');
            } else if d.chars().all(|c| c.is_ascii_digit()) && digits.is_empty() {
                digits.push_str(d);
                j += 1;
                break;
            } else {
                break;
            }
            j += 1;
        }
        if !digits.is_empty() {
            value += format!("0.{digits}").parse::<f64>().unwrap_or(0.0);
            i = j;
        }
    } else if is(&n.and, i) && is(&n.article, i + 1) {
        if let Some(f) = w(i + 2).and_then(|x| n.fractions.get(x)) {
            value += f;
            i += 3;
        }
    }
    Some((value, i - start))
}

/// Whether a number may start at `words[i]`.
fn starts_number(words: &[Word], i: usize, n: &NumberWords) -> bool {
    let is =
        |list: &[String], k: usize| words.get(k).is_some_and(|x| NumberWords::is(list, &x.norm));
    is_written_number(&words[i].norm)
        || n.starts(&words[i].norm)
        || (is(&n.article, i) && (is(&n.hundred, i + 1) || is(&n.thousand, i + 1)))
}

fn fold_numbers(words: &[Word], n: &NumberWords) -> Vec<Token> {
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        // A sign word before a number is part of it.
        let signed = NumberWords::is(&n.signs, &words[i].norm)
            && i + 1 < words.len()
            && starts_number(words, i + 1, n);
        let start = i + usize::from(signed);
        if starts_number(words, start, n) {
            if let Some((value, used)) = read_number(words, start, n) {
                if used > 0 {
                    let digits = words[start..start + used]
                        .iter()
                        .map(|w| w.raw.as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    let sign = &words[i].raw;
                    let written = sign.starts_with(SIGN_SYMBOLS);
                    let (value, raw) = match signed {
                        false => (value, digits),
                        // "-20" as written, "minus twenty" as said.
                        true if written => (-value, format!("{sign}{digits}")),
                        true => (-value, format!("{sign} {digits}")),
                    };
                    out.push(Token {
                        norm: format_number(value),
                        raw,
                        number: Some(value),
                    });
                    i = start + used;
                    continue;
                }
            }
        }
        out.push(Token::word(&words[i].norm, &words[i].raw));
        i += 1;
    }
    out
}

/// Formats a number the way a reply speaks it: no trailing ".0", at most two decimals.
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let s = format!("{value:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn han_characters_are_words_whatever_the_spacing_and_full_width_forms_are_ascii() {
        let norms = |t: &str| tokenize(t).into_iter().map(|t| t.norm).collect::<Vec<_>>();
        assert_eq!(norms("打开车内灯。"), ["打", "开", "车", "内", "灯"]);
        assert_eq!(norms("打开 车内灯"), norms("打开车内灯"));
        assert_eq!(
            norms("音量调到５０％，谢谢"),
            ["音", "量", "调", "到", "50", "percent", "谢", "谢"]
        );
        let raws: Vec<String> = tokenize("导航到上海 虹桥站 now")
            .into_iter()
            .map(|t| t.raw)
            .collect();
        assert_eq!(
            join_words(raws.iter().map(String::as_str)),
            "导航到上海虹桥站 now"
        );
    }

    fn norms(text: &str) -> Vec<String> {
        tokenize(text).into_iter().map(|t| t.norm).collect()
    }

    fn number(text: &str) -> Option<f64> {
        let toks = tokenize(text);
        assert_eq!(toks.len(), 1, "{text:?} gave {toks:?}");
        toks[0].number
    }

    #[test]
    fn spoken_numbers_fold_into_one_token() {
        assert_eq!(number("twenty one and a half"), Some(21.5));
        assert_eq!(number("twenty-one"), Some(21.0));
        assert_eq!(number("nineteen"), Some(19.0));
        assert_eq!(number("seventy"), Some(70.0));
        assert_eq!(number("one hundred"), Some(100.0));
        assert_eq!(number("a hundred and five"), Some(105.0));
        assert_eq!(number("two thousand and twenty six"), Some(2026.0));
        assert_eq!(number("ninety eight point five"), Some(98.5));
        assert_eq!(number("twenty point two five"), Some(20.25));
        assert_eq!(number("21.5"), Some(21.5));
        assert_eq!(number("21"), Some(21.0));
        assert_eq!(number("21 and a half"), Some(21.5));
        assert_eq!(number("zero"), Some(0.0));
    }

    #[test]
    fn units_and_punctuation_normalise() {
        assert_eq!(norms("Seventy percent!"), ["70", "percent"]);
        assert_eq!(norms("70%"), ["70", "percent"]);
        assert_eq!(norms("21°C"), ["21", "degrees"]);
        assert_eq!(norms("What's the range?"), ["whats", "the", "range"]);
        assert_eq!(norms("rear-left window"), ["rear", "left", "window"]);
        assert_eq!(norms("Set it to 21.5."), ["set", "it", "to", "21.5"]);
    }

    #[test]
    fn separate_numbers_stay_separate() {
        // Two tens words in a row are two numbers, not one.
        assert_eq!(norms("twenty twenty"), ["20", "20"]);
        // "a" alone is a word, and "half" without a number is a word.
        assert_eq!(norms("a half open window"), ["a", "half", "open", "window"]);
        assert_eq!(norms("the next one"), ["the", "next", "1"]);
        assert_eq!(norms("one two"), ["1", "2"]);
        // Digit-by-digit readings are ambiguous ("one oh one"), so they are not folded.
        assert_eq!(norms("one oh one"), ["1", "oh", "1"]);
    }

    /// Regression (#37): the sign was dropped, so "set the temperature to -20" set 20 °C.
    #[test]
    fn signs_are_read_in_words_and_symbols() {
        assert_eq!(number("-20"), Some(-20.0));
        assert_eq!(number("\u{2212}1"), Some(-1.0));
        assert_eq!(number("-100.5"), Some(-100.5));
        assert_eq!(number("minus thirty"), Some(-30.0));
        assert_eq!(number("negative three"), Some(-3.0));
        assert_eq!(number("minus twenty one and a half"), Some(-21.5));
        assert_eq!(tokenize("-20")[0].raw, "-20");
        assert_eq!(tokenize("Minus 10")[0].raw, "Minus 10");
        assert_eq!(
            norms("make it really cold, minus 10"),
            ["make", "it", "really", "cold", "-10"]
        );
        // A hyphen between words or numbers, or a sign before no number, is no sign.
        assert_eq!(norms("rear-left"), ["rear", "left"]);
        assert_eq!(norms("20-25"), ["20", "25"]);
        assert_eq!(norms("twenty-one"), ["21"]);
        assert_eq!(norms("- 20"), ["20"]);
        assert_eq!(norms("minus the tax"), ["minus", "the", "tax"]);
    }

    /// The number words are the lexicon's: Chinese numerals arrive one character a token.
    #[test]
    fn chinese_and_indonesian_numbers_fold_in_their_own_words() {
        let read = |text: &str, language: &str| -> Vec<String> {
            let lexicon = Lexicon::shipped(language).unwrap();
            tokenize_with(text, &lexicon.numbers)
                .into_iter()
                .map(|t| t.norm)
                .collect()
        };
        for (text, want) in [
            ("二十一度", vec!["21", "度"]),
            ("九十三点七", vec!["93.7"]),
            ("十一", vec!["11"]),
            ("一百零五", vec!["105"]),
            ("两千三百", vec!["2300"]),
            ("负五", vec!["-5"]),
            ("调到 22 度", vec!["调", "到", "22", "度"]),
        ] {
            assert_eq!(read(text, "zh-CN"), want, "{text}");
        }
        for (text, want) in [
            ("dua puluh satu derajat", vec!["21", "derajat"]),
            ("sebelas", vec!["11"]),
            ("dua belas", vec!["12"]),
            ("seratus dua puluh", vec!["120"]),
            ("dua ratus lima", vec!["205"]),
            ("seribu", vec!["1000"]),
            ("sembilan puluh tiga koma tujuh", vec!["93.7"]),
        ] {
            assert_eq!(read(text, "id"), want, "{text}");
        }
        // English words are no numbers to another language.
        assert_eq!(read("twenty one", "id"), ["twenty", "one"]);
    }

    #[test]
    fn free_text_keeps_original_spelling() {
        let toks = tokenize("Navigate to Munich Central, please");
        assert_eq!(toks[2].raw, "Munich");
        assert_eq!(toks[3].raw, "Central");
        assert_eq!(toks[3].norm, "central");
    }

    #[test]
    fn numbers_format_for_speech() {
        assert_eq!(format_number(21.0), "21");
        assert_eq!(format_number(21.5), "21.5");
        assert_eq!(format_number(2.345), "2.35");
        assert_eq!(format_number(-3.0), "-3");
    }
}
