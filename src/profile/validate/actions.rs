//! Intents' vehicle actions checked: the D-Bus names, the signature and every argument's
//! source, so that a call that reaches the bus is well-formed and in range.

use super::Validator;
use crate::profile::dbus_value::DbusType;
use crate::profile::raw::RawAction;
use crate::profile::*;
use std::collections::BTreeMap;

impl Validator<'_> {
    pub(super) fn action(
        &mut self,
        raw: &RawAction,
        intent: &str,
        here: Option<std::ops::Range<usize>>,
        slots: &BTreeMap<String, String>,
        types: &BTreeMap<String, SlotType>,
    ) -> Option<Action> {
        let at = |field: &str| format!("intent '{intent}'.action.{field}");
        let (service, path, interface, target) = match raw {
            RawAction::Call {
                service,
                path,
                interface,
                target,
                ..
            }
            | RawAction::SetProperty {
                service,
                path,
                interface,
                target,
                ..
            }
            | RawAction::GetProperty {
                service,
                path,
                interface,
                target,
                ..
            } => (service, path, interface, target),
        };
        let start = self.errors.len();
        self.endpoint(
            here.clone(),
            &format!("intent '{intent}'.action"),
            service,
            path,
            interface,
        );
        if target.trim().is_empty() {
            self.error(
                here.clone(),
                &at("target"),
                "target is empty".into(),
                "name the device as a reply would say it, e.g. \"the climate control\"",
            );
        }
        let member_ok = |m: &str| zbus::names::MemberName::try_from(m).is_ok();
        let kind = match raw {
            RawAction::Call {
                method,
                signature,
                args,
                ..
            } => {
                if !member_ok(method) {
                    self.error(
                        here.clone(),
                        &at("method"),
                        format!("'{method}' is not a valid method name"),
                        "use a D-Bus member name such as \"SetTemperature\"",
                    );
                }
                let specs = self.args(signature, args, &at("args"), here.clone(), slots, types);
                ActionKind::Call {
                    method: method.clone(),
                    args: specs.unwrap_or_default(),
                }
            }
            RawAction::SetProperty {
                property,
                signature,
                value,
                ..
            } => {
                if !member_ok(property) {
                    self.error(
                        here.clone(),
                        &at("property"),
                        format!("'{property}' is not a valid property name"),
                        "use a D-Bus member name such as \"Volume\"",
                    );
                }
                if signature.chars().count() != 1 {
                    self.error(
                        here.clone(),
                        &at("signature"),
                        format!("a property has one value, but the signature is \"{signature}\""),
                        "give the single type of the property, e.g. \"u\"",
                    );
                }
                let specs = self.args(
                    signature,
                    std::slice::from_ref(value),
                    &at("value"),
                    here.clone(),
                    slots,
                    types,
                );
                match specs.and_then(|mut s| s.pop()) {
                    Some(value) => ActionKind::SetProperty {
                        property: property.clone(),
                        value,
                    },
                    None => return None,
                }
            }
            RawAction::GetProperty { property, .. } => {
                if !member_ok(property) {
                    self.error(
                        here.clone(),
                        &at("property"),
                        format!("'{property}' is not a valid property name"),
                        "use a D-Bus member name such as \"Range\"",
                    );
                }
                ActionKind::GetProperty {
                    property: property.clone(),
                }
            }
        };
        if self.errors.len() > start {
            return None;
        }
        Some(Action {
            service: service.clone(),
            path: path.clone(),
            interface: interface.clone(),
            target: target.clone(),
            kind,
        })
    }

    pub(super) fn args(
        &mut self,
        signature: &str,
        args: &[String],
        field: &str,
        here: Option<std::ops::Range<usize>>,
        slots: &BTreeMap<String, String>,
        types: &BTreeMap<String, SlotType>,
    ) -> Option<Vec<ArgSpec>> {
        let sig_field = field
            .rsplit_once('.')
            .map(|(a, _)| format!("{a}.signature"))
            .unwrap_or_default();
        let tys = match DbusType::parse_signature(signature) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    here,
                    &sig_field,
                    format!("signature \"{signature}\": {e}"),
                    "write one basic type per argument, e.g. \"sd\"",
                );
                return None;
            }
        };
        if tys.len() != args.len() {
            self.error(
                here,
                &sig_field,
                format!(
                    "signature \"{signature}\" has {} argument(s) but {} value(s) are given",
                    tys.len(),
                    args.len()
                ),
                "give one type per argument, in order",
            );
            return None;
        }
        let mut out = Vec::new();
        for (i, (ty, arg)) in tys.iter().zip(args).enumerate() {
            let f = format!("{field}[{i}]");
            let ph = placeholders(arg);
            let whole_slot = ph.len() == 1 && arg.trim() == format!("{{{}}}", ph[0]);
            if ph.is_empty() {
                match ty.literal(arg) {
                    Ok(v) => out.push(ArgSpec {
                        ty: *ty,
                        source: ArgSource::Literal(v),
                    }),
                    Err(e) => self.error(
                        here.clone(),
                        &f,
                        e.to_string(),
                        "write a literal of the signature's type, or a {slot}",
                    ),
                }
                continue;
            }
            for p in &ph {
                if !slots.contains_key(p) {
                    self.error(
                        here.clone(),
                        &f,
                        format!("{{{p}}} is not a slot of any sentence of this intent"),
                        "use a slot that the sentences capture",
                    );
                }
            }
            if !whole_slot {
                if *ty != DbusType::String {
                    self.error(here.clone(), &f, format!("\"{arg}\" mixes text and slots, which only a string ('s') argument can take, but the signature says '{ty}'"), "use exactly \"{slot}\" for a non-string argument");
                } else {
                    out.push(ArgSpec {
                        ty: *ty,
                        source: ArgSource::Format(arg.clone()),
                    });
                }
                continue;
            }
            let slot = &ph[0];
            let Some(slot_type) = slots.get(slot).and_then(|t| types.get(t)) else {
                continue;
            };
            if let Err(problem) = check_slot_fits(slot_type, *ty) {
                self.error(here.clone(), &f, format!("slot {{{slot}}} cannot be passed as D-Bus type '{ty}': {problem}"), "change the signature to match the slot type, or the slot type to match the method");
                continue;
            }
            out.push(ArgSpec {
                ty: *ty,
                source: ArgSource::Slot(slot.clone()),
            });
        }
        Some(out)
    }
}

pub(super) fn check_slot_fits(slot: &SlotType, ty: DbusType) -> Result<(), String> {
    match slot {
        SlotType::Enum { .. } | SlotType::Text { .. } if ty == DbusType::String => Ok(()),
        SlotType::Enum { .. } | SlotType::Text { .. } => Err("the slot holds text".into()),
        SlotType::Decimal { .. } if ty == DbusType::Double => Ok(()),
        SlotType::Decimal { .. } => Err("the slot holds decimals, which need 'd'".into()),
        SlotType::Integer { min, max, .. } => {
            if ty == DbusType::Double {
                return Ok(());
            }
            let Some((lo, hi)) = ty.integer_range() else {
                return Err("the slot holds numbers".into());
            };
            if (*min as f64) < lo || (*max as f64) > hi {
                return Err(format!("the slot range {min}..={max} does not fit"));
            }
            Ok(())
        }
    }
}
