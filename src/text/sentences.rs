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

#[cfg(test)]
mod tests {
    use super::*;

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
