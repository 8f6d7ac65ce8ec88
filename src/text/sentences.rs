//! Reply text cut into sentences as it streams in, so each can be spoken (or checked) as soon
//! as it is whole.

/// Words after which a full stop is not a sentence's end.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "no", "e.g", "i.e", "vs", "approx", "ave", "rd",
];

/// A clause this long ends at its comma (or semicolon, colon) as if it were a sentence: a long
/// first sentence would otherwise hold back the first audio (about 0.1 s of synthesis per
/// second of speech), and a comma is a pause anyway.
const LONG_CLAUSE: usize = 60;

/// The first phrase of a reply ends at a clause boundary this far in: what is heard first is
/// synthesised first ("The nearest charger is 3 km away, …" plays while the rest is made).
const FIRST_CLAUSE: usize = 24;

/// Takes the whole sentences off the front of `text` (all of it when `flush`); a long one is
/// cut at a clause boundary.
pub fn take_sentences(text: &mut String, flush: bool) -> Vec<String> {
    take_phrases(text, flush, false)
}

/// As [`take_sentences`]; when `first`, the first phrase taken ends at the first clause
/// boundary [`FIRST_CLAUSE`] characters in, however long its sentence.
pub fn take_phrases(text: &mut String, flush: bool, mut first: bool) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let clause = if first { FIRST_CLAUSE } else { LONG_CLAUSE };
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut cut = None;
        for (k, &(i, c)) in chars.iter().enumerate() {
            let next = chars.get(k + 1).map(|&(_, n)| n);
            let end = match c {
                '\n' => Some(i + 1),
                '.' | '!' | '?' if next.is_some_and(char::is_whitespace) => {
                    let word: String = text[..i]
                        .rsplit(|c: char| c.is_whitespace())
                        .next()
                        .unwrap_or_default()
                        .to_lowercase();
                    (c != '.' || !ABBREVIATIONS.contains(&word.as_str())).then_some(i + 1)
                }
                ',' | ';' | ':' if i >= clause && next.is_some_and(char::is_whitespace) => {
                    Some(i + 1)
                }
                // Chinese marks end a sentence or clause with no space after them.
                '。' | '！' | '？' => Some(i + c.len_utf8()),
                '，' | '；' | '：' if i >= clause => Some(i + c.len_utf8()),
                _ => None,
            };
            if let Some(end) = end {
                cut = Some(end);
                break;
            }
        }
        match cut {
            Some(end) => {
                let sentence: String = text.drain(..end).collect();
                if !sentence.trim().is_empty() {
                    out.push(sentence.trim().to_string());
                    first = false;
                }
            }
            None => break,
        }
    }
    if flush && !text.trim().is_empty() {
        out.push(text.trim().to_string());
        text.clear();
    }
    out
}

/// `text` in pieces of at most `max` characters each, cut at the safest point in reach: after
/// the last clause or sentence mark followed by a space, else at the last space, else (one
/// word longer than `max`) at `max` characters. A voice's memory grows faster than the length
/// of what it is given at once, so text from outside is never given to it whole.
pub fn pieces(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(1);
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        // The byte index of the character just past `max`, if the rest is longer.
        let Some((limit, _)) = rest.char_indices().nth(max) else {
            out.push(rest);
            break;
        };
        let window = &rest[..limit];
        let clause_end = |&(i, c): &(usize, char)| {
            matches!(c, ',' | ';' | ':' | '.' | '!' | '?')
                && window[i + c.len_utf8()..].starts_with(char::is_whitespace)
        };
        // A space right at the limit makes the whole window a piece of whole words.
        let cut = if rest[limit..].starts_with(char::is_whitespace) {
            limit
        } else if let Some((i, c)) = window.char_indices().rev().find(clause_end) {
            i + c.len_utf8()
        } else if let Some((i, _)) = window
            .char_indices()
            .rev()
            .find(|&(i, c)| c.is_whitespace() && i > 0)
        {
            i
        } else {
            limit
        };
        let piece = rest[..cut].trim();
        if !piece.is_empty() {
            out.push(piece);
        }
        rest = rest[cut..].trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_into_pieces_at_clauses_then_words_then_anywhere() {
        assert_eq!(pieces("  Short enough.  ", 20), ["Short enough."]);
        assert!(pieces("   ", 20).is_empty());
        // A clause mark in reach wins over a later space.
        assert_eq!(
            pieces("one two, three four five six", 20),
            ["one two,", "three four five six"]
        );
        // No clause mark: the last space in reach.
        assert_eq!(
            pieces("nine nine nine nine nine nine", 12),
            ["nine nine", "nine nine", "nine nine"]
        );
        // A space right at the limit keeps the whole window.
        assert_eq!(pieces("abcd efgh", 4), ["abcd", "efgh"]);
        // One word longer than the limit: cut where it must be, on a character boundary.
        assert_eq!(pieces("ééééééé", 3), ["ééé", "ééé", "é"]);
        // A decimal point is not a clause mark.
        assert_eq!(pieces("it is 21.5 degrees", 12), ["it is 21.5", "degrees"]);
    }

    #[test]
    fn no_piece_is_longer_than_the_limit_and_no_word_is_lost() {
        let text = "the car is driving along the road, and the driver wants to open the window while the music plays ".repeat(40)
            + &"9".repeat(300);
        for max in [1, 7, 60, 250] {
            let cut = pieces(&text, max);
            assert!(cut.iter().all(|p| p.chars().count() <= max), "{max}");
            assert_eq!(
                cut.concat().replace(' ', ""),
                text.replace(' ', ""),
                "{max}"
            );
        }
    }

    #[test]
    fn a_long_sentence_is_cut_at_a_clause() {
        let mut t = String::from(
            "Munich is a city in Germany known for its rich history and its beer, beautiful architecture, and vibrant nightlife. Yes, it is.",
        );
        assert_eq!(
            take_sentences(&mut t, false),
            [
                "Munich is a city in Germany known for its rich history and its beer,",
                "beautiful architecture, and vibrant nightlife.",
            ]
        );
        assert_eq!(t, " Yes, it is.");
    }

    #[test]
    fn a_replys_first_clause_is_its_first_phrase() {
        let reply = "The nearest charger is 3.2 km away, on Main Street near the park. Shall I?";
        let mut t = reply.to_string();
        assert_eq!(
            take_phrases(&mut t, true, true),
            [
                "The nearest charger is 3.2 km away,",
                "on Main Street near the park.",
                "Shall I?"
            ]
        );
        // Later sentences keep their commas unless they are long; a short first clause too.
        let mut t =
            "Sure, I can. Yes, the nearest charger is 3.2 km away, on Main Street.".to_string();
        assert_eq!(
            take_phrases(&mut t, true, true),
            [
                "Sure, I can.",
                "Yes, the nearest charger is 3.2 km away, on Main Street."
            ]
        );
    }

    #[test]
    fn chinese_sentences_end_at_their_own_marks() {
        let mut t = String::from("好的。已为你打开车内灯！还要别的吗");
        assert_eq!(
            take_sentences(&mut t, false),
            ["好的。", "已为你打开车内灯！"]
        );
        assert_eq!(t, "还要别的吗");
    }

    #[test]
    fn sentences_split_at_their_ends_only() {
        let mut t = String::from("It's 21.5 degrees. Mr. Smith called! Shall I");
        assert_eq!(
            take_sentences(&mut t, false),
            ["It's 21.5 degrees.", "Mr. Smith called!"]
        );
        assert_eq!(t, " Shall I");
        t.push_str(" call back?");
        assert!(take_sentences(&mut t, false).is_empty());
        assert_eq!(take_sentences(&mut t, true), ["Shall I call back?"]);
        assert!(t.is_empty());
    }

    #[test]
    fn streamed_text_makes_the_same_sentences() {
        let reply =
            "Sure. The nearest charger is 3.2 km away, on Main St. near the park. Want directions?";
        let mut whole = reply.to_string();
        let mut at_once = take_sentences(&mut whole, false);
        at_once.extend(take_sentences(&mut whole, true));
        let mut streamed = Vec::new();
        let mut pending = String::new();
        for piece in reply.as_bytes().chunks(3) {
            pending.push_str(std::str::from_utf8(piece).unwrap());
            streamed.extend(take_sentences(&mut pending, false));
        }
        streamed.extend(take_sentences(&mut pending, true));
        assert_eq!(streamed, at_once);
        assert_eq!(at_once.len(), 3, "{at_once:?}");
    }
}
