//! Slots a route left open: filled from the dialog's last turn, the speaker's zone and the
//! intent's defaults; a bare value with no question open is asked about, never acted on.

use super::*;

impl Assistant {
    /// Missing slots come from the dialog (for seat zones: a zone the same seat named in this
    /// session), then the speaker's seat (zone slots), then the intent's default. "my" resolves to the
    /// speaker's seat, or stays missing when the seat is unknown.
    pub(super) fn fill_slots(
        &self,
        intent: &Intent,
        slots: &mut BTreeMap<String, SlotValue>,
        context: &Context,
        zone: Option<&str>,
    ) {
        let speaker_value = |ty: &SlotType| match (ty, zone) {
            (SlotType::Enum { zones: true, .. }, Some(z)) => ty.value_for_key(z),
            _ => None,
        };
        for (name, type_name) in &intent.slots {
            let ty = &self.profile.slot_types[type_name];
            if matches!(slots.get(name), Some(SlotValue::Enum { key, .. }) if key == SPEAKER) {
                match speaker_value(ty) {
                    Some(v) => slots.insert(name.clone(), v),
                    None => slots.remove(name),
                };
                continue;
            }
            if slots.contains_key(name) {
                continue;
            }
            // Only seat zones carry over ("a bit warmer" stays on the passenger side); an
            // amount or a name said before must not replace this request's default.
            let carries_over = matches!(ty, SlotType::Enum { zones: true, .. });
            let from_context = context
                .last
                .as_ref()
                .filter(|l| carries_over && l.zone.as_deref() == zone)
                .and_then(|last| {
                    let last_intent = &self.profile.intents[last.intent];
                    last.slots
                        .iter()
                        .find(|(n, _)| last_intent.slots.get(*n) == Some(type_name))
                        .map(|(_, v)| v.clone())
                });
            if let Some(v) = from_context
                .or_else(|| speaker_value(ty))
                .or_else(|| intent.defaults.get(name).cloned())
            {
                slots.insert(name.clone(), v);
            }
        }
    }

    /// A follow-up that is only a new enum or number value for one of the last intent's
    /// slots. Free-text slots are left out: "sounds good" must never become a destination.
    pub(super) fn elliptic(&self, last: &Last, text: &str) -> Option<(String, SlotValue)> {
        let intent = &self.profile.intents[last.intent];
        intent.slots.iter().find_map(|(name, type_name)| {
            let ty = &self.profile.slot_types[type_name];
            if matches!(ty, SlotType::Text { .. }) {
                return None;
            }
            self.matcher
                .parse_slot_value(type_name, unit_of(ty), text)
                .map(|v| (name.clone(), v))
        })
    }

    /// The question for a bare value of one of the profile's slot types: what it is for.
    pub(super) fn fragment(&self, text: &str) -> Option<String> {
        let value = self
            .profile
            .slot_types
            .iter()
            .filter(|(_, ty)| !matches!(ty, SlotType::Text { .. }))
            .find_map(|(name, ty)| self.matcher.parse_slot_value(name, unit_of(ty), text))?;
        Some(match value {
            // A number said back only while short: "set to 20", not 300 digits.
            SlotValue::Number(n) if format_number(n).len() <= FRAGMENT_NUMBER_CHARS => {
                let replies = &self.profile.lexicon.replies;
                replies
                    .fragment_number
                    .replace("{number}", &format_number(n))
            }
            SlotValue::Enum { key, spoken } if key != SPEAKER => {
                let replies = &self.profile.lexicon.replies;
                replies.fragment_value.replace("{value}", &spoken)
            }
            _ => self.profile.lexicon.replies.fragment.clone(),
        })
    }
}
