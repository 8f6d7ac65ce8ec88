//! A sentence's sounds for a voice that reads IPA (Kokoro), as the language's lexicon says to
//! find them (`[speech] sounds`): eSpeak NG's IPA, or for Mandarin each word's pinyin through
//! the lexicon's table. Words are cut by jieba, so that a word's syllables are said together.

use crate::speak::engine::{phonemes, TtsError};
use crate::text::lexicon::{Lexicon, PinyinSounds, Sounds as Source};
use pinyin::ToPinyin;

/// Finds the sounds of text in one language.
pub enum Sounds {
    Espeak {
        voice: String,
    },
    Pinyin {
        table: Box<PinyinSounds>,
        /// jieba, loaded once (its dictionary takes a few hundred milliseconds).
        words: Box<jieba_rs::Jieba>,
        /// The words for 10, 100, 1000, the decimal point and minus, from the lexicon's numbers.
        number_words: [String; 5],
        /// eSpeak NG's voice for what is not Chinese (a name written in Latin letters):
        /// English's.
        latin: String,
    },
}

impl Sounds {
    pub fn for_language(lexicon: &Lexicon) -> Sounds {
        match (lexicon.speech.sounds, &lexicon.speech.pinyin) {
            (Source::Pinyin, Some(table)) => {
                let n = &lexicon.numbers;
                // The lexicon check makes sure each list has a word.
                let first = |l: &[String]| l.first().cloned().unwrap_or_default();
                Sounds::Pinyin {
                    table: Box::new(table.clone()),
                    words: Box::new(jieba_rs::Jieba::new()),
                    number_words: [
                        first(&n.times_ten),
                        first(&n.hundred),
                        first(&n.thousand),
                        first(&n.point),
                        first(&n.signs),
                    ],
                    latin: Lexicon::english().speech.espeak_voice.clone(),
                }
            }
            // The lexicon check refuses pinyin without its table.
            _ => Sounds::Espeak {
                voice: lexicon.speech.espeak_voice.clone(),
            },
        }
    }

    /// The IPA of `text` (one piece of a reply), clause punctuation kept as ASCII marks.
    pub fn of(&self, text: &str) -> Result<String, TtsError> {
        match self {
            Sounds::Espeak { voice } => phonemes(text, voice),
            Sounds::Pinyin {
                table,
                words,
                number_words,
                latin,
            } => {
                let mut out = String::new();
                for run in runs(text) {
                    match run {
                        Run::Han(han) => {
                            let han = digits_in_characters(han, table, number_words);
                            for word in words.cut(&han, true) {
                                if !out.is_empty() && !out.ends_with(' ') {
                                    out.push(' ');
                                }
                                out.push_str(&word_sounds(word.word, table));
                            }
                        }
                        Run::Mark(c) => out.push(c),
                        Run::Other(other) => {
                            let ipa = phonemes(other, latin)?;
                            if !out.is_empty() {
                                out.push(' ');
                            }
                            out.push_str(ipa.trim_end_matches(['.', ',', '!', '?']));
                        }
                    }
                }
                Ok(out.trim().to_string())
            }
        }
    }
}

enum Run<'a> {
    /// Chinese, with the digits among it.
    Han(&'a str),
    /// Clause punctuation, as its ASCII mark.
    Mark(char),
    /// Anything else (Latin letters).
    Other(&'a str),
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{9fff}' | '\u{f900}'..='\u{faff}') || c.is_ascii_digit()
}

fn mark(c: char) -> Option<char> {
    match c {
        '，' | ',' | '、' | '；' | ';' | '：' | ':' => Some(','),
        '。' | '.' => Some('.'),
        '！' | '!' => Some('!'),
        '？' | '?' => Some('?'),
        _ => None,
    }
}

/// A full stop between digits: a decimal point, not the end of a clause.
fn decimal_point(chars: &[(usize, char)], i: usize) -> bool {
    chars[i].1 == '.'
        && i > 0
        && chars[i - 1].1.is_ascii_digit()
        && chars.get(i + 1).is_some_and(|(_, n)| n.is_ascii_digit())
}

/// A minus sign opening a number ("-5"; not the dash of "3-5"), between `before` and `after`.
fn minus(before: Option<char>, c: char, after: Option<char>) -> bool {
    matches!(c, '-' | '−')
        && after.is_some_and(|n| n.is_ascii_digit())
        && !before.is_some_and(|b| b.is_ascii_digit())
}

/// `text` cut into Chinese, punctuation and the rest (spaces dropped).
fn runs(text: &str) -> Vec<Run<'_>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(text.len(), |(a, _)| *a);
    let han_at = |i: usize| {
        let before = i.checked_sub(1).map(|b| chars[b].1);
        let after = chars.get(i + 1).map(|(_, a)| *a);
        is_han(chars[i].1) || decimal_point(&chars, i) || minus(before, chars[i].1, after)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if let Some(m) = mark(c).filter(|_| !decimal_point(&chars, i)) {
            out.push(Run::Mark(m));
            i += 1;
            continue;
        }
        let han = han_at(i);
        let mut j = i + 1;
        while j < chars.len()
            && han_at(j) == han
            && !chars[j].1.is_whitespace()
            && (mark(chars[j].1).is_none() || decimal_point(&chars, j))
        {
            j += 1;
        }
        let piece = &text[at(i)..at(j)];
        out.push(if han {
            Run::Han(piece)
        } else {
            Run::Other(piece)
        });
        i = j;
    }
    out
}

/// Digits written as Chinese numerals ("21.5" → "二十一点五"), with a minus before them read
/// as the sign word.
fn digits_in_characters(text: &str, t: &PinyinSounds, words: &[String; 5]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let before = i.checked_sub(1).map(|b| chars[b]);
        if minus(before, chars[i], chars.get(i + 1).copied()) {
            out.push_str(&words[4]);
            i += 1;
            continue;
        }
        if !chars[i].is_ascii_digit() {
            if chars[i] != '.' {
                out.push(chars[i]);
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let whole: String = chars[start..i].iter().collect();
        out.push_str(&integer(&whole, t, words));
        if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
            out.push_str(&words[3]);
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                out.push_str(&t.digits[chars[i] as usize - '0' as usize]);
                i += 1;
            }
        }
    }
    out
}

/// A whole number in characters: up to 9999 by place ("一百零五"), longer ones digit by digit.
fn integer(digits: &str, t: &PinyinSounds, words: &[String; 5]) -> String {
    let digit = |c: char| t.digits[c as usize - '0' as usize].clone();
    let n: Option<u32> = digits.parse().ok().filter(|n| *n < 10_000);
    let Some(n) = n.filter(|_| !(digits.len() > 1 && digits.starts_with('0'))) else {
        return digits.chars().map(digit).collect();
    };
    if n == 0 {
        return t.digits[0].clone();
    }
    let places = [
        (1000, &words[2]),
        (100, &words[1]),
        (10, &words[0]),
        (1, &String::new()),
    ];
    let mut out = String::new();
    let mut zero = false;
    for (place, word) in places {
        let d = (n / place) % 10;
        if d == 0 {
            zero = !out.is_empty();
            continue;
        }
        if zero {
            out.push_str(&t.digits[0]);
            zero = false;
        }
        // 十 alone for 10-19, as it is said.
        if !(place == 10 && d == 1 && n < 20) {
            out.push_str(&t.digits[d as usize]);
        }
        out.push_str(word);
    }
    out
}

/// The sounds of one word: its reading in the table, or each character's first reading.
fn word_sounds(word: &str, t: &PinyinSounds) -> String {
    let syllables: Vec<String> = match t.readings.get(word) {
        Some(r) => r.split_whitespace().map(str::to_string).collect(),
        None => word
            .chars()
            .map(|c| match t.readings.get(c.to_string().as_str()) {
                Some(r) => r.clone(),
                None => c
                    .to_pinyin()
                    .map(|p| p.with_tone_num_end().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
    };
    syllables.iter().map(|s| syllable(s, t)).collect()
}

/// One pinyin syllable with its tone number at the end ("zhong1") as sounds.
fn syllable(s: &str, t: &PinyinSounds) -> String {
    let s = s.replace('ü', "v");
    let (letters, tone) = match s.char_indices().last() {
        Some((at, d @ '1'..='5')) => (&s[..at], d as usize - '0' as usize),
        _ => (s.as_str(), 5),
    };
    // The longest initial that leaves a final ("zh" before "z"; "n" is a syllable of its own).
    let initial = [2, 1]
        .into_iter()
        .filter_map(|len| letters.get(..len))
        .find(|i| t.initials.contains_key(*i) && letters.len() > i.len());
    let mut out = String::new();
    let final_ = match initial {
        Some(i) => {
            out.push_str(&t.initials[i]);
            let rest = &letters[i.len()..];
            if t.umlaut_after.iter().any(|u| u == i) && rest.starts_with('u') {
                format!("v{}", &rest[1..])
            } else {
                rest.to_string()
            }
        }
        None => t
            .spelled
            .get(letters)
            .cloned()
            .unwrap_or_else(|| letters.to_string()),
    };
    let sound = match initial
        .and_then(|i| t.apical.get(i))
        .filter(|_| final_ == "i")
    {
        Some(apical) => apical.clone(),
        // b, p, m, f + o is said "wo"; the table's "o" is.
        None => t.finals.get(&final_).cloned().unwrap_or_default(),
    };
    let mark = match tone {
        1..=4 => t.tones[tone - 1].as_str(),
        _ => "",
    };
    match sound.split_once('_') {
        Some((vowel, coda)) => {
            out.push_str(vowel);
            out.push_str(mark);
            out.push_str(coda);
        }
        None => {
            out.push_str(&sound);
            out.push_str(mark);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zh() -> Sounds {
        Sounds::for_language(&Lexicon::shipped("zh-CN").unwrap())
    }

    #[test]
    fn mandarin_is_read_word_by_word_in_kokoros_sounds() {
        let s = zh();
        // The tone after the vowel, before the coda; 调 read as "adjust" (tiáo).
        assert_eq!(s.of("打开空调。").unwrap(), "ta↓kʰa→ɪ kʰʊ→ŋtʰjɑ↗ʊ.");
        // Zero initials, ü after j, the apical vowels, the neutral tone.
        assert_eq!(s.of("去").unwrap(), "ʨʰy↘");
        assert_eq!(s.of("是").unwrap(), "ʂɨ↘");
        assert_eq!(s.of("四").unwrap(), "sɨ↘");
        assert_eq!(s.of("音乐").unwrap(), "i→nɥe↘");
        assert!(s.of("好的").unwrap().ends_with("tɤ"));
    }

    #[test]
    fn digits_are_read_as_chinese_numbers() {
        let t = Lexicon::shipped("zh-CN").unwrap();
        let table = t.speech.pinyin.as_ref().unwrap();
        let words = ["十", "百", "千", "点", "负"].map(str::to_string);
        let say = |s: &str| digits_in_characters(s, table, &words);
        assert_eq!(say("调到21度"), "调到二十一度");
        assert_eq!(say("10"), "十");
        assert_eq!(say("105"), "一百零五");
        assert_eq!(say("2026"), "二千零二十六");
        assert_eq!(say("21.5度"), "二十一点五度");
        assert_eq!(say("-5度"), "负五度");
        assert_eq!(say("0"), "零");
        assert_eq!(say("13800138000"), "一三八零零一三八零零零");
    }

    #[test]
    fn punctuation_is_kept_as_clause_marks_and_latin_is_read_by_espeak() {
        let s = zh();
        let ipa = s.of("你好，Cabin！").unwrap();
        assert!(ipa.starts_with("ni↓xɑ↓ʊ,"), "{ipa}");
        assert!(ipa.ends_with('!'), "{ipa}");
        assert!(ipa.contains('k'), "{ipa}");
        // A minus opening a number is the sign word, not a Latin run.
        assert_eq!(s.of("零下-5度").unwrap(), s.of("零下负五度").unwrap());
    }
}
