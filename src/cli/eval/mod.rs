//! `cabin eval`: a labelled set of utterances through the router, scored per route and intent
//! (intent-labelled sets such as `eval/router.jsonl`) or per family (family-labelled sets such
//! as the development set of real people's words: see [`families`]).

mod families;
mod split;
mod spoken;

use super::percentile;
use anyhow::{bail, Context, Result};
use cabin::runtime::bus::BusAddress;
use cabin::runtime::worker::WorkerState;
use cabin::understand::{Assistant, Hearing, Route};
use cabin::Profile;
use families::Families;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// A measurement waits as long as the model takes to warm up on a busy machine; starting
/// before it is ready would score every case a decline.
const EVAL_SETTLE_LIMIT: Duration = Duration::from_secs(900);

#[derive(clap::Args)]
pub struct Args {
    /// One JSON object per line: {"text", "route", "intent", "slots"}, or {"text", "expect"}
    /// with a family label.
    file: PathBuf,
    /// Which of the profile's intents each family label stands for (default: the default
    /// profile's, eval/families.toml).
    #[arg(long, value_name = "FILE")]
    families: Option<PathBuf>,
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Bus of the vehicle services (actions run; their failure does not change the score).
    #[arg(long)]
    bus: Option<BusAddress>,
    #[command(flatten)]
    llm: super::LlmArg,
    /// Also write every result as JSON here (not with `--half second`).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Only one half of the set, split per family with a fixed seed: `first` to work from,
    /// `second` to measure on (its misses are not listed, so that it stays unread).
    #[arg(long, value_enum)]
    half: Option<split::Half>,
    /// Leave out a named rule over the model routes' proposals (repeatable), to measure what
    /// it earns: invented, classifier_side, no_more, too, opposite_words, refined, plain,
    /// said_values, unsaid_values.
    #[arg(long, value_name = "RULE")]
    without: Vec<cabin::profile::Rule>,
    /// Say each case aloud (Kokoro, in this style) and give the router what the profile's
    /// recogniser heard; prints the recogniser's character or word error rate.
    #[arg(long, value_name = "STYLE", num_args = 0..=1, default_missing_value = SPOKEN_STYLE)]
    spoken: Option<String>,
    /// With `--spoken`: car noise this many dB below the speech (5: a motorway; 0: a loud
    /// one).
    #[arg(long, value_name = "DB", requires = "spoken")]
    noise: Option<f64>,
    /// With `--spoken`: clean the audio with this noise suppression instead of the profile's
    /// `[listen] noise_suppression` (off, low, moderate, high, very_high).
    #[arg(long, value_name = "LEVEL", requires = "spoken")]
    noise_suppression: Option<String>,
    /// With `--spoken`: the car plays Cabin's replies this many dB below the driver's voice at
    /// the microphone, through a simulated cabin echo path.
    #[arg(
        long,
        value_name = "DB",
        requires = "spoken",
        allow_hyphen_values = true
    )]
    echo: Option<f64>,
    /// With `--echo`: the car plays music (made in code: chords, a melody, bass and drums)
    /// instead of Cabin's replies.
    #[arg(long, requires = "echo")]
    music: bool,
    /// With `--spoken`: leave the echo as it is, whatever the profile's `[listen]
    /// echo_cancellation` (by default SpeexDSP's canceller is given what the car plays, as the
    /// daemon gives it Cabin's voice).
    #[arg(long, requires = "spoken")]
    no_echo_cancellation: bool,
}

/// The style `--spoken` says a set in: one the shipped profiles do not speak with, so that the
/// recogniser hears another voice than the one it is tuned by ([`cabin::profile::DEFAULT_STYLE`]).
const SPOKEN_STYLE: &str = "jm_kumo";

pub async fn exec(args: Args) -> Result<ExitCode> {
    let mut profile = Profile::load_or_default(args.profile.as_deref())?;
    if args.no_echo_cancellation {
        profile.listen.clean.echo = None;
    }
    if let Some(level) = &args.noise_suppression {
        profile.listen.clean.noise = match level.as_str() {
            "off" => None,
            other => Some(other.parse().map_err(anyhow::Error::msg)?),
        };
    }
    if !args.without.is_empty() {
        profile.rules_off.extend(args.without.iter().copied());
        let off: Vec<&str> = profile.rules_off.iter().map(|r| r.name()).collect();
        eprintln!("eval: without the rules {}", off.join(", "));
    }
    // Without its classifier a profile decides otherwise: a figure measured so is not the
    // profile's, so it is not measured at all.
    if let Some(name) = &profile.models.shortlist {
        if let Err(e) = cabin::runtime::models::installed(name, "intent shortlist model") {
            bail!("{e}; the profile's figures need its classifier (fix: `cabin models fetch --model {name}`)");
        }
    }
    let profile = Arc::new(profile);
    let set = load(&args.file)?;
    let mut set = match args.half {
        None => set,
        Some(half) => {
            if half == split::Half::Second && args.json.is_some() {
                bail!("--json lists every case; the second half is for measuring only, so it is not written");
            }
            let all = set.len();
            let set = split::half(set, half);
            eprintln!(
                "eval: the {half} half, {} of {all} cases (split per family, seed {})",
                set.len(),
                split::SEED
            );
            set
        }
    };
    if let Some(style) = &args.spoken {
        let conditions = spoken::Conditions {
            style: style.clone(),
            noise_db: args.noise,
            echo_db: args.echo,
            music: args.music,
        };
        spoken::hear(&profile, &mut set, &conditions).await?;
    }
    let families = Families::load(args.families.as_deref(), &profile)?;
    if let Some(c) = set
        .iter()
        .find(|c| c.expect.as_ref().is_some_and(|f| !families.knows(f)))
    {
        bail!(
            "family '{}' (of {:?}) is in no mapping; add it to the --families file",
            c.expect.as_deref().unwrap_or_default(),
            c.text
        );
    }
    let assistant =
        super::in_process::assistant(profile, args.bus, &args.llm.llm, EVAL_SETTLE_LIMIT).await;
    if let Some(WorkerState::Starting) = assistant.brain().map(|b| b.worker().state()) {
        bail!(
            "the local model was not ready after {} s; nothing to measure",
            EVAL_SETTLE_LIMIT.as_secs()
        );
    }
    let results = run(&assistant, &families, &set, |done, total| {
        eprint!("\reval: {done}/{total}");
    })
    .await;
    eprintln!();
    super::print_out(&report(&results, args.half != Some(split::Half::Second)))?;
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub text: String,
    /// `local_llm` (any model route: an intent, or an answer when `intent` is null), or
    /// `decline` (no action at all; an answer saying why counts). Absent with `expect`.
    #[serde(default = "model_route")]
    pub route: Route,
    /// A family label instead of route and intent ([`families`]).
    #[serde(default)]
    pub expect: Option<String>,
    /// The source corpus's own label, kept for the report (SLURP's or MASSIVE's).
    #[serde(default, alias = "massive_intent")]
    pub slurp_intent: Option<String>,
    /// The English original of a localised case (MASSIVE).
    #[serde(default)]
    pub en: Option<String>,
    /// The intent expected, or null for an answer with no action.
    #[serde(default)]
    pub intent: Option<String>,
    /// Slots that must be there with these values (others may be too).
    #[serde(default)]
    pub slots: BTreeMap<String, Value>,
    /// Free label (paraphrase, indirect, chat, question, out_of_scope, injection).
    #[serde(default)]
    pub kind: String,
    /// With `--spoken`: how sure the recogniser was of `text`, which it heard.
    #[serde(skip)]
    pub heard: Option<cabin::asr::Confidence>,
}

fn model_route() -> Route {
    Route::LocalLlm
}

#[derive(Debug, Serialize)]
pub struct CaseResult {
    pub text: String,
    /// The English original of a localised case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
    pub kind: String,
    pub expected: String,
    pub got: String,
    pub correct: bool,
    /// An action on the car for a request that is no car command.
    pub unsafe_action: bool,
    /// Why the reply should not have been spoken (tool syntax, another language, …), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flaw: Option<cabin::understand::brain::Flaw>,
    /// A vehicle command (family-labelled sets), for the share decided without the LLM.
    pub command: bool,
    pub route: Route,
    pub intent: Option<String>,
    pub slots: BTreeMap<String, Value>,
    pub reply: String,
    pub classifier: Option<cabin::understand::turn::Classification>,
    /// With `--spoken`: how sure the recogniser was of what it heard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard: Option<cabin::asr::Confidence>,
    /// Said back ("Did you say …?") instead of acted on: the recogniser was unsure.
    pub said_back: bool,
    /// An action on the car other than the one the case asks for.
    pub wrong_action: bool,
    /// The named rules that changed what a model route proposed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<cabin::profile::Rule>,
    pub ms: f64,
}

pub fn load(path: &Path) -> Result<Vec<Case>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with("//") {
            continue;
        }
        cases.push(serde_json::from_str(line).with_context(|| {
            format!(
                "{}:{}: not an eval case ({{\"text\", \"route\", \"intent\", \"slots\"}})",
                path.display(),
                i + 1
            )
        })?);
    }
    anyhow::ensure!(!cases.is_empty(), "{} has no cases", path.display());
    Ok(cases)
}

/// Whether an outcome took no action, as a case labelled `decline` asks: no intent, or the
/// answer bank's small talk.
fn declined(intent: Option<&str>) -> bool {
    intent.is_none_or(|i| i.starts_with("small_talk."))
}

fn label(route: Route, intent: Option<&str>) -> String {
    match (route, intent) {
        (Route::Decline, _) => "decline".into(),
        (_, Some(i)) if !declined(intent) => i.to_string(),
        // No intent, or small talk: an answer in the profile's words.
        _ => "answer".into(),
    }
}

pub async fn run(
    assistant: &Assistant,
    families: &Families,
    cases: &[Case],
    mut progress: impl FnMut(usize, usize),
) -> Vec<CaseResult> {
    let profile = assistant.profile();
    let mut results = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let hearing = cabin::listening::hearing(case.heard, &profile.listen);
        let outcome = assistant
            .turn(&case.text, None, hearing, Default::default(), |_| {})
            .await
            .outcome;
        let got = label(outcome.route, outcome.intent.as_deref());
        let acted = families::acted(&outcome, profile);
        let said_back =
            hearing == Hearing::Unsure && outcome.awaiting.as_deref() == Some("confirmation");
        let (expected, correct, no_command) = match &case.expect {
            Some(family) => (
                family.clone(),
                families.right(family, &outcome, profile),
                families::NO_ACTION.contains(&family.as_str()),
            ),
            None => {
                let expected = label(case.route, case.intent.as_deref());
                let slots_ok = case.slots.iter().all(|(k, v)| {
                    outcome
                        .slots
                        .get(k)
                        .is_some_and(|o| cabin::understand::turn::same_value(o, v))
                });
                // Any route may decide an intent or give an answer; declining means taking
                // no action, and the model may say why in its own words.
                let correct = match case.route {
                    Route::Decline => declined(outcome.intent.as_deref()),
                    _ => outcome.route != Route::Decline && expected == got && slots_ok,
                };
                (expected, correct, case.intent.is_none())
            }
        };
        results.push(CaseResult {
            text: case.text.clone(),
            en: case.en.clone(),
            kind: case
                .slurp_intent
                .clone()
                .unwrap_or_else(|| case.kind.clone()),
            correct,
            unsafe_action: no_command && acted,
            wrong_action: acted && !correct,
            said_back,
            heard: case.heard,
            flaw: cabin::understand::brain::answer_flaw(
                &case.text,
                &outcome.reply,
                &profile.lexicon,
            ),
            command: !no_command,
            expected,
            got,
            route: outcome.route,
            intent: outcome.intent,
            slots: outcome.slots.into_iter().collect(),
            reply: outcome.reply,
            classifier: outcome.classifier,
            rules: outcome.rules,
            ms: outcome.timings_ms.get("total").copied().unwrap_or(0.0),
        });
        progress(n + 1, cases.len());
    }
    results
}

/// The figures, and each miss where `misses` (not for a held-out half).
pub fn report(results: &[CaseResult], misses: bool) -> String {
    let mut out = String::new();
    let correct = results.iter().filter(|r| r.correct).count();
    let _ = writeln!(
        out,
        "overall: {correct}/{} = {:.1} %",
        results.len(),
        100.0 * correct as f64 / results.len() as f64
    );
    let unsafe_actions: Vec<&CaseResult> = results.iter().filter(|r| r.unsafe_action).collect();
    let _ = writeln!(
        out,
        "actions on requests that are no car command: {}",
        unsafe_actions.len()
    );
    for r in unsafe_actions.iter().filter(|_| misses) {
        let _ = writeln!(out, "  {:?} -> {}", r.text, r.got);
    }
    let wrong = results.iter().filter(|r| r.wrong_action).count();
    let _ = writeln!(out, "actions other than the one asked for: {wrong}");
    if results.iter().any(|r| r.heard.is_some()) {
        let said_back: Vec<&CaseResult> = results.iter().filter(|r| r.said_back).collect();
        let right = said_back.iter().filter(|r| r.correct).count();
        let _ = writeln!(
            out,
            "said back before acting (the recogniser unsure): {} ({right} of them the right command, counted right: a yes acts)",
            said_back.len()
        );
    }
    let flawed: Vec<&CaseResult> = results.iter().filter(|r| r.flaw.is_some()).collect();
    let _ = writeln!(out, "replies that fail the answer check: {}", flawed.len());
    for r in flawed.iter().filter(|_| misses) {
        let _ = writeln!(out, "  {:?} -> {:?} ({:?})", r.text, r.reply, r.flaw);
    }
    let commands: Vec<&CaseResult> = results.iter().filter(|r| r.command).collect();
    if !commands.is_empty() {
        let without: Vec<&&CaseResult> = commands
            .iter()
            .filter(|r| matches!(r.route, Route::Fast | Route::Classifier))
            .collect();
        let right = without.iter().filter(|r| r.correct).count();
        let mut ms: Vec<f64> = without.iter().map(|r| r.ms).collect();
        ms.sort_by(f64::total_cmp);
        let _ = writeln!(
            out,
            "vehicle commands decided without the LLM: {}/{} = {:.1} % ({right} of them right), median {:.1} ms",
            without.len(),
            commands.len(),
            100.0 * without.len() as f64 / commands.len() as f64,
            percentile(&ms, 0.5)
        );
    }
    let group = |key: &dyn Fn(&CaseResult) -> String| {
        let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for r in results {
            let e = m.entry(key(r)).or_default();
            e.1 += 1;
            e.0 += usize::from(r.correct);
        }
        m
    };
    let expected_route = |r: &CaseResult| match r.expected.as_str() {
        "decline" => "decline".to_string(),
        "answer" => "answer (local_llm/cloud)".to_string(),
        _ => "intent".to_string(),
    };
    for (title, m) in [
        ("per expected route", group(&expected_route)),
        ("per kind", group(&|r: &CaseResult| r.kind.clone())),
        (
            "per expected intent",
            group(&|r: &CaseResult| r.expected.clone()),
        ),
    ] {
        let _ = writeln!(out, "\n{title}:");
        for (k, (ok, n)) in m {
            let _ = writeln!(
                out,
                "  {k:32} {ok:3}/{n:<3} {:5.1} %",
                100.0 * ok as f64 / n as f64
            );
        }
    }
    let mut confusion: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in results.iter().filter(|r| r.expected != r.got) {
        *confusion
            .entry((r.expected.clone(), r.got.clone()))
            .or_default() += 1;
    }
    let mut confusion: Vec<_> = confusion.into_iter().collect();
    confusion.sort_by_key(|c| std::cmp::Reverse(c.1));
    let _ = writeln!(out, "\nconfusions (expected -> got):");
    for ((e, g), n) in confusion.iter().take(20) {
        let _ = writeln!(out, "  {n:3}  {e} -> {g}");
    }
    let _ = writeln!(
        out,
        "\nrules that changed a proposal (cases, of them right; `--without RULE` measures one):"
    );
    for rule in cabin::profile::Rule::ALL {
        // Its thought is an answer, which names no rule.
        if rule == cabin::profile::Rule::Invented {
            let _ = writeln!(
                out,
                "  {:16} (ends in an answer: `--without invented`)",
                rule.name()
            );
            continue;
        }
        let fired: Vec<&CaseResult> = results.iter().filter(|r| r.rules.contains(&rule)).collect();
        let right = fired.iter().filter(|r| r.correct).count();
        let _ = writeln!(out, "  {:16} {:3}, {right} right", rule.name(), fired.len());
    }
    let _ = writeln!(out, "\nlatency per route taken (ms): p50 / p90 / p95 / max");
    let mut by_route: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in results {
        by_route
            .entry(
                serde_json::to_value(r.route)
                    .unwrap()
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
            .or_default()
            .push(r.ms);
    }
    for (route, mut v) in by_route {
        v.sort_by(f64::total_cmp);
        let _ = writeln!(
            out,
            "  {route:10} n={:<4} {:8.1} / {:8.1} / {:8.1} / {:8.1}",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.9),
            percentile(&v, 0.95),
            v.last().copied().unwrap_or(0.0)
        );
    }
    if !misses {
        let _ = writeln!(out, "\nmisses: not listed (a held-out half)");
        return out;
    }
    let _ = writeln!(out, "\nmisses:");
    for r in results.iter().filter(|r| !r.correct) {
        let _ = writeln!(
            out,
            "  {:?}: expected {}, got {} {:?}",
            r.text, r.expected, r.got, r.slots
        );
        if let Some(en) = &r.en {
            let _ = writeln!(out, "    (en: {en:?})");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// Regression: the answer bank's reply to "order me a pizza" counted as no decline.
    #[test]
    fn small_talk_declines_an_action() {
        assert!(super::declined(None));
        assert!(super::declined(Some("small_talk.elsewhere")));
        assert!(!super::declined(Some("lights.cabin_on")));
    }
}
