//! The driving-safety policy: an intent's `when` constraint against the vehicle's driving
//! state. Applied in one place, before any action runs, whatever route proposed the intent.

use crate::profile::dbus_value::ArgValue;
use crate::profile::{Constraint, Gear};

/// What Cabin knows of the driving state; `None` where the vehicle did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DrivingState {
    pub speed_kmh: Option<f64>,
    pub gear: Option<Gear>,
    pub parking_brake: Option<bool>,
}

impl DrivingState {
    /// Reversing or parking manoeuvre: no small talk then.
    pub fn manoeuvring(&self) -> bool {
        self.gear == Some(Gear::Reverse)
    }
}

/// Checks a constraint on a call with `args`, as it would go on the bus. Unknown state counts
/// as a violation: without a speed, Cabin assumes the car may be moving. Returns why it
/// refused, for logs and `--json`.
pub fn check(
    constraint: &Constraint,
    state: &DrivingState,
    args: &[ArgValue],
) -> Result<(), Refusal> {
    if constraint.argument.as_ref().is_some_and(|b| !b.holds(args)) {
        return Ok(());
    }
    if let Some(gears) = &constraint.gear {
        match state.gear {
            None => return Err(Refusal::GearUnknown),
            Some(g) if !gears.contains(&g) => return Err(Refusal::Gear(g)),
            Some(_) => {}
        }
    }
    if let Some(max) = constraint.max_speed_kmh {
        match state.speed_kmh {
            None => return Err(Refusal::SpeedUnknown),
            Some(v) if v > max => return Err(Refusal::Speed { speed: v, max }),
            Some(_) => {}
        }
    }
    if let Some(want) = constraint.parking_brake {
        match state.parking_brake {
            None => return Err(Refusal::ParkingBrakeUnknown),
            Some(b) if b != want => return Err(Refusal::ParkingBrake(b)),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Why the safety policy refused an intent; its text goes to the logs and `refused` in
/// `--json`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("gear unknown")]
    GearUnknown,
    #[error("gear is {}", gear_name(*.0))]
    Gear(Gear),
    #[error("speed unknown")]
    SpeedUnknown,
    #[error("speed {speed} km/h is above {max} km/h")]
    Speed { speed: f64, max: f64 },
    #[error("parking brake state unknown")]
    ParkingBrakeUnknown,
    #[error("parking brake is {}", if *.0 { "on" } else { "off" })]
    ParkingBrake(bool),
}

pub fn gear_name(g: Gear) -> &'static str {
    match g {
        Gear::Park => "park",
        Gear::Reverse => "reverse",
        Gear::Neutral => "neutral",
        Gear::Drive => "drive",
    }
}

pub fn parse_gear(s: &str) -> Option<Gear> {
    match s.to_ascii_lowercase().as_str() {
        "park" | "p" => Some(Gear::Park),
        "reverse" | "r" => Some(Gear::Reverse),
        "neutral" | "n" => Some(Gear::Neutral),
        "drive" | "d" => Some(Gear::Drive),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constraint(gear: Option<Vec<Gear>>, max_speed_kmh: Option<f64>) -> Constraint {
        Constraint {
            gear,
            max_speed_kmh,
            parking_brake: None,
            argument: None,
            refusal: "no".into(),
        }
    }

    fn check(constraint: &Constraint, state: &DrivingState) -> Result<(), Refusal> {
        super::check(constraint, state, &[])
    }

    /// Regression (#37): the window's speed limit held for "open the window" but not for the
    /// same call with a value; a bound on the argument says which calls it holds for.
    #[test]
    fn a_constraint_may_hold_only_beyond_a_value() {
        let open_far = Constraint {
            argument: Some(crate::profile::ArgumentBound {
                index: 1,
                above: Some(30.0),
                below: None,
            }),
            ..constraint(None, Some(80.0))
        };
        let fast = DrivingState {
            speed_kmh: Some(130.0),
            gear: Some(Gear::Drive),
            parking_brake: Some(false),
        };
        let window = |percent| [ArgValue::String("driver".into()), ArgValue::Uint32(percent)];
        assert!(super::check(&open_far, &fast, &window(30)).is_ok());
        assert_eq!(
            super::check(&open_far, &fast, &window(100)),
            Err(Refusal::Speed {
                speed: 130.0,
                max: 80.0
            })
        );
        assert!(super::check(&open_far, &DrivingState::default(), &window(0)).is_ok());
        assert!(super::check(&open_far, &DrivingState::default(), &window(31)).is_err());
        // An argument that is not there: the constraint holds.
        assert!(super::check(&open_far, &fast, &[]).is_err());
    }

    #[test]
    fn gear_and_speed_rules() {
        let park_only = constraint(Some(vec![Gear::Park]), None);
        let parked = DrivingState {
            speed_kmh: Some(0.0),
            gear: Some(Gear::Park),
            parking_brake: Some(true),
        };
        let driving = DrivingState {
            speed_kmh: Some(80.0),
            gear: Some(Gear::Drive),
            parking_brake: Some(false),
        };
        assert!(check(&park_only, &parked).is_ok());
        assert_eq!(
            check(&park_only, &driving).map_err(|r| r.to_string()),
            Err("gear is drive".into())
        );
        let slow = constraint(None, Some(5.0));
        assert!(check(&slow, &parked).is_ok());
        assert_eq!(
            check(&slow, &driving).map_err(|r| r.to_string()),
            Err("speed 80 km/h is above 5 km/h".into())
        );
    }

    #[test]
    fn unknown_state_is_refused() {
        let unknown = DrivingState::default();
        assert!(check(&constraint(Some(vec![Gear::Park]), None), &unknown).is_err());
        assert!(check(&constraint(None, Some(120.0)), &unknown).is_err());
    }
}
