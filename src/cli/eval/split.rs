//! Two halves of a labelled set, split per family with a fixed seed: one to work from, one
//! kept unread to measure on. The split depends only on the seed and each case's family and
//! place among its family's cases, so every machine draws the same halves.

use super::Case;

/// The seed of every split: fixed, so the halves never change.
pub const SEED: u64 = 38;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Half {
    /// The half to read and work from.
    First,
    /// The held-out half: measured, never read.
    Second,
}

impl std::fmt::Display for Half {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Half::First => "first",
            Half::Second => "second",
        })
    }
}

/// SplitMix64: a well-mixed hash of a counter.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The cases of one half, in the set's order: within each family (`expect`, else `intent`),
/// the cases are ordered by a seeded hash of their place and the first half (rounded up) of
/// them is the first half.
pub fn half(cases: Vec<Case>, which: Half) -> Vec<Case> {
    let family = |c: &Case| {
        c.expect
            .clone()
            .or_else(|| c.intent.clone())
            .unwrap_or_default()
    };
    let mut by_family: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, c) in cases.iter().enumerate() {
        by_family.entry(family(c)).or_default().push(i);
    }
    let mut first = vec![false; cases.len()];
    for members in by_family.values() {
        let mut order: Vec<usize> = members.clone();
        order.sort_by_key(|&i| mix(SEED ^ mix(i as u64)));
        for &i in &order[..members.len().div_ceil(2)] {
            first[i] = true;
        }
    }
    cases
        .into_iter()
        .zip(first)
        .filter(|(_, f)| *f == (which == Half::First))
        .map(|(c, _)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(text: &str, family: &str) -> Case {
        serde_json::from_value(serde_json::json!({"text": text, "expect": family})).unwrap()
    }

    #[test]
    fn the_halves_are_disjoint_cover_the_set_and_split_each_family() {
        let cases = || {
            (0..21)
                .map(|i| {
                    case(
                        &format!("c{i}"),
                        if i % 3 == 0 { "chat" } else { "lights.on" },
                    )
                })
                .collect::<Vec<_>>()
        };
        let a: Vec<String> = half(cases(), Half::First)
            .into_iter()
            .map(|c| c.text)
            .collect();
        let b: Vec<String> = half(cases(), Half::Second)
            .into_iter()
            .map(|c| c.text)
            .collect();
        assert_eq!(a.len() + b.len(), 21);
        assert!(a.iter().all(|t| !b.contains(t)));
        // 7 chat cases: 4 and 3; 14 lights: 7 and 7.
        let chats = |v: &[String]| {
            v.iter()
                .filter(|t| t[1..].parse::<usize>().unwrap() % 3 == 0)
                .count()
        };
        assert_eq!((chats(&a), chats(&b)), (4, 3));
        // The same halves every time, and not simply the first cases of the file.
        assert_eq!(
            a,
            half(cases(), Half::First)
                .into_iter()
                .map(|c| c.text)
                .collect::<Vec<_>>()
        );
        assert_ne!(
            a[..7],
            (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn massive_cases_load_with_their_own_label_and_the_english_original() {
        let c: Case = serde_json::from_str(
            r#"{"text": "t", "massive_intent": "play_radio", "expect": "media.radio", "en": "play"}"#,
        )
        .unwrap();
        assert_eq!(c.slurp_intent.as_deref(), Some("play_radio"));
        assert_eq!(c.en.as_deref(), Some("play"));
    }
}
