//! Fast-path match time per utterance over the whole default profile.
//!
//! `cargo bench --bench fastpath` (CI runs it from the test build: `cargo test --release
//! --benches`). Prints figures; asserts nothing about time.

use cabin::profile::sentences::example_sentences;
use cabin::profile::Profile;
use cabin::understand::grammar::Matcher;
use std::hint::black_box;
use std::time::{Duration, Instant};

const NEGATIVES: &[&str] = &[
    "tell me a joke",
    "what's the weather like in Paris",
    "it's freezing in here",
    "I can't see a thing, the windscreen is fogged",
    "how do I change a tyre",
    "remind me to buy milk when we get home",
];

fn main() {
    let profile = Profile::embedded_default();
    let built = Instant::now();
    let matcher = Matcher::new(&profile);
    let build_time = built.elapsed();

    let mut corpus: Vec<String> = example_sentences(&profile)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let positives = corpus.len();
    corpus.extend(NEGATIVES.iter().map(|s| s.to_string()));

    // Warm up, then time each utterance many times and keep the per-utterance means.
    for s in &corpus {
        black_box(matcher.match_text(s));
    }
    let rounds = 20;
    let mut per_utterance: Vec<Duration> = corpus
        .iter()
        .map(|s| {
            let t = Instant::now();
            for _ in 0..rounds {
                black_box(matcher.match_text(black_box(s)));
            }
            t.elapsed() / rounds
        })
        .collect();
    per_utterance.sort();
    let total: Duration = per_utterance.iter().sum();
    let pct = |p: f64| per_utterance[((per_utterance.len() - 1) as f64 * p) as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;

    println!(
        "fast path over {} ({} intents, {} sentences)",
        profile.file,
        profile.intents.len(),
        matcher.sentence_count()
    );
    println!("  matcher build       {:>9.1} µs", us(build_time));
    println!("  utterances          {:>9} ({positives} profile sentences + {} negatives), {rounds} rounds each", corpus.len(), NEGATIVES.len());
    println!(
        "  match time mean     {:>9.2} µs",
        us(total / per_utterance.len() as u32)
    );
    println!("  match time p50      {:>9.2} µs", us(pct(0.50)));
    println!("  match time p95      {:>9.2} µs", us(pct(0.95)));
    println!("  match time max      {:>9.2} µs", us(pct(1.0)));
}
