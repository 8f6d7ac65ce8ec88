//! Intents that can make the same vehicle call carry the same driving constraint: otherwise
//! one phrasing bypasses another's policy ("open the driver window to 100 percent" opened it
//! at 130 km/h, where "open the driver window" was refused).

use super::Validator;
use crate::profile::dbus_value::ArgValue;
use crate::profile::raw::RawIntent;
use crate::profile::*;
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

/// The values an argument of an intent's action can take.
#[derive(Debug)]
enum Values {
    Any,
    Exactly(ArgValue),
    Keys(BTreeSet<String>),
    Range(f64, f64),
}

impl Validator<'_> {
    /// Checks every pair of intents that can call the same member with the same arguments.
    pub(super) fn same_calls(
        &mut self,
        raw: &[Spanned<RawIntent>],
        intents: &[Intent],
        types: &BTreeMap<String, SlotType>,
    ) {
        for (i, a) in intents.iter().enumerate() {
            for b in &intents[i + 1..] {
                let same = match (&a.when, &b.when) {
                    (None, None) => true,
                    (Some(x), Some(y)) => x.same_conditions(y),
                    _ => false,
                };
                if same || !may_make_the_same_call(a, b, types) {
                    continue;
                }
                let here = raw
                    .iter()
                    .find(|r| r.get_ref().name == b.name)
                    .map(|r| r.span());
                let (kind, member, _) = call(&b.action);
                self.error(
                    here,
                    &format!("intent '{}'.when", b.name),
                    format!(
                        "'{}' and '{}' can both {kind} {}.{member} with the same arguments, but their driving constraints differ",
                        a.name, b.name, b.action.interface
                    ),
                    "give both the same [intents.when] conditions (gear, max_speed_kmh, parking_brake, argument), so that no phrasing reaches the call without its policy",
                );
            }
        }
    }
}

/// The kind of an action, its member, and its arguments' sources.
fn call(a: &Action) -> (&'static str, &str, Vec<&ArgSpec>) {
    match &a.kind {
        ActionKind::Call { method, args } => ("call", method, args.iter().collect()),
        ActionKind::SetProperty { property, value } => ("set", property, vec![value]),
        ActionKind::GetProperty { property } => ("get", property, Vec::new()),
    }
}

/// Whether some call of `a`'s action is also one of `b`'s: the same endpoint and member, and
/// for each argument a value both can pass.
fn may_make_the_same_call(a: &Intent, b: &Intent, types: &BTreeMap<String, SlotType>) -> bool {
    let (x, y) = (&a.action, &b.action);
    let ((kind_a, member_a, args_a), (kind_b, member_b, args_b)) = (call(x), call(y));
    (&x.service, &x.path, &x.interface, kind_a, member_a)
        == (&y.service, &y.path, &y.interface, kind_b, member_b)
        && args_a.len() == args_b.len()
        && args_a
            .iter()
            .zip(&args_b)
            .all(|(p, q)| overlap(&values(p, a, types), &values(q, b, types)))
}

fn values(spec: &ArgSpec, intent: &Intent, types: &BTreeMap<String, SlotType>) -> Values {
    match &spec.source {
        ArgSource::Literal(v) => Values::Exactly(v.clone()),
        ArgSource::Format(_) => Values::Any,
        ArgSource::Slot(name) => match intent.slots.get(name).and_then(|t| types.get(t)) {
            Some(SlotType::Enum { values, .. }) => {
                Values::Keys(values.iter().map(|v| v.key.clone()).collect())
            }
            Some(SlotType::Integer { min, max, .. }) => Values::Range(*min as f64, *max as f64),
            Some(SlotType::Decimal { min, max, .. }) => Values::Range(*min, *max),
            Some(SlotType::Text { .. }) | None => Values::Any,
        },
    }
}

fn overlap(a: &Values, b: &Values) -> bool {
    use Values::*;
    match (a, b) {
        (Any, _) | (_, Any) => true,
        (Exactly(x), Exactly(y)) => x == y,
        (Exactly(v), Keys(keys)) | (Keys(keys), Exactly(v)) => {
            matches!(v, ArgValue::String(s) if keys.contains(s))
        }
        (Exactly(v), Range(lo, hi)) | (Range(lo, hi), Exactly(v)) => {
            v.as_number().is_some_and(|n| (*lo..=*hi).contains(&n))
        }
        (Keys(x), Keys(y)) => !x.is_disjoint(y),
        (Range(a_lo, a_hi), Range(b_lo, b_hi)) => a_lo <= b_hi && b_lo <= a_hi,
        (Keys(_), Range(..)) | (Range(..), Keys(_)) => false,
    }
}
