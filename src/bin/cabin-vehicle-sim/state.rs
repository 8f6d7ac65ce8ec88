//! The simulated vehicle's state, named after COVESA VSS signals where one fits.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Seat positions of a left-hand-drive two-row car; Cabin's profiles name them so.
pub const SEATS: [&str; 4] = ["driver", "passenger", "rear_left", "rear_right"];

/// VSS branch of each seat position (HVAC stations, doors and seats).
fn vss_station(seat: &str) -> &'static str {
    match seat {
        "driver" => "Row1.Driver",
        "passenger" => "Row1.Passenger",
        "rear_left" => "Row2.Driver",
        _ => "Row2.Passenger",
    }
}

fn vss_side(seat: &str) -> &'static str {
    match seat {
        "driver" => "Row1.DriverSide",
        "passenger" => "Row1.PassengerSide",
        "rear_left" => "Row2.DriverSide",
        _ => "Row2.PassengerSide",
    }
}

pub const WHEELS: [&str; 4] = ["front_left", "front_right", "rear_left", "rear_right"];

fn vss_wheel(wheel: &str) -> &'static str {
    match wheel {
        "front_left" => "Row1.Wheel.Left",
        "front_right" => "Row1.Wheel.Right",
        "rear_left" => "Row2.Wheel.Left",
        _ => "Row2.Wheel.Right",
    }
}

pub const SOURCES: [&str; 4] = ["radio", "bluetooth", "usb", "streaming"];
pub const HEAT_LEVELS: [&str; 4] = ["off", "low", "medium", "high"];
pub const COLOURS: [&str; 6] = ["red", "blue", "green", "white", "orange", "purple"];
/// The stations the radio knows, by key (the profile's `station` slot), with their frequency
/// in MHz.
pub const STATIONS: [(&str, f64); 12] = [
    ("radio_one", 98.8),
    ("radio_two", 88.4),
    ("radio_four", 93.5),
    ("classic_fm", 100.9),
    ("jazz_fm", 102.2),
    ("news_radio", 97.3),
    ("rock_fm", 105.4),
    ("country_radio", 89.9),
    ("pop_hits", 95.8),
    ("talk_radio", 90.2),
    ("sports_radio", 104.3),
    ("soul_fm", 106.6),
];
/// Cabin light brightness levels: 1 (dimmest) to 10.
pub const BRIGHTNESS: (u32, u32) = (1, 10);
pub const GEARS: [&str; 4] = ["park", "reverse", "neutral", "drive"];
pub const CONTACTS: [&str; 5] = ["Alex", "Mum", "Office", "Sam", "Jordan"];

#[derive(Debug, Clone)]
pub struct VehicleState {
    pub hvac_on: bool,
    pub air_conditioning: bool,
    pub fan_speed: u32,
    pub temperature: BTreeMap<&'static str, f64>,
    pub defrost_front: bool,
    pub defrost_rear: bool,
    pub window_position: BTreeMap<&'static str, u32>,
    pub seat_heating: BTreeMap<&'static str, &'static str>,
    pub cabin_lights: bool,
    pub brightness: u32,
    pub ambient_colour: String,
    pub volume: u32,
    pub muted: bool,
    /// The media's level while Cabin speaks (percent of its volume).
    pub ducked: Option<u32>,
    pub playing: bool,
    pub source: String,
    pub station_mhz: f64,
    /// The radio programme last asked for by name ("the billy bob show"), or empty.
    pub programme: String,
    pub track: i64,
    pub destination: String,
    pub active_call: String,
    pub speed_kmh: f64,
    pub gear: String,
    pub parking_brake: bool,
    pub fuel_percent: f64,
    pub range_km: f64,
    pub outside_celsius: f64,
    pub tyre_bar: BTreeMap<&'static str, f64>,
    pub trunk_open: bool,
}

impl Default for VehicleState {
    fn default() -> Self {
        VehicleState {
            hvac_on: true,
            air_conditioning: false,
            fan_speed: 2,
            temperature: SEATS.iter().map(|s| (*s, 20.0)).collect(),
            defrost_front: false,
            defrost_rear: false,
            window_position: SEATS.iter().map(|s| (*s, 0)).collect(),
            seat_heating: SEATS.iter().map(|s| (*s, "off")).collect(),
            cabin_lights: false,
            brightness: 6,
            ambient_colour: "white".into(),
            volume: 30,
            muted: false,
            ducked: None,
            playing: false,
            source: "radio".into(),
            station_mhz: 98.5,
            programme: String::new(),
            track: 1,
            destination: String::new(),
            active_call: String::new(),
            speed_kmh: 0.0,
            gear: "park".into(),
            parking_brake: true,
            fuel_percent: 64.0,
            range_km: 412.0,
            outside_celsius: 7.5,
            tyre_bar: [
                ("front_left", 2.4),
                ("front_right", 2.4),
                ("rear_left", 2.3),
                ("rear_right", 2.35),
            ]
            .into_iter()
            .collect(),
            trunk_open: false,
        }
    }
}

impl VehicleState {
    pub fn lowest_tyre_pressure(&self) -> f64 {
        self.tyre_bar
            .values()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }

    /// Every signal by its VSS-style path. Units: °C, km/h, percent, bar, MHz.
    pub fn snapshot(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: String, v: Value| {
            m.insert(k, v);
        };
        put("Vehicle.Cabin.HVAC.IsOn".into(), json!(self.hvac_on));
        put(
            "Vehicle.Cabin.HVAC.IsAirConditioningActive".into(),
            json!(self.air_conditioning),
        );
        put(
            "Vehicle.Cabin.HVAC.FanSpeedLevel".into(),
            json!(self.fan_speed),
        );
        put(
            "Vehicle.Cabin.HVAC.IsFrontDefrosterActive".into(),
            json!(self.defrost_front),
        );
        put(
            "Vehicle.Cabin.HVAC.IsRearDefrosterActive".into(),
            json!(self.defrost_rear),
        );
        for seat in SEATS {
            put(
                format!(
                    "Vehicle.Cabin.HVAC.Station.{}.Temperature",
                    vss_station(seat)
                ),
                json!(self.temperature[seat]),
            );
            put(
                format!("Vehicle.Cabin.Door.{}.Window.Position", vss_side(seat)),
                json!(self.window_position[seat]),
            );
            put(
                format!("Vehicle.Cabin.Seat.{}.HeatingLevel", vss_side(seat)),
                json!(self.seat_heating[seat]),
            );
        }
        put(
            "Vehicle.Cabin.Light.IsDomeOn".into(),
            json!(self.cabin_lights),
        );
        put(
            "Vehicle.Cabin.Light.Brightness".into(),
            json!(self.brightness),
        );
        put(
            "Vehicle.Cabin.Light.AmbientLight.Color".into(),
            json!(self.ambient_colour),
        );
        put(
            "Vehicle.Cabin.Infotainment.Media.Volume".into(),
            json!(self.volume),
        );
        put(
            "Vehicle.Cabin.Infotainment.Media.IsMuted".into(),
            json!(self.muted),
        );
        put(
            "Vehicle.Cabin.Infotainment.Media.DuckLevel".into(),
            json!(self.ducked.unwrap_or(100)),
        );
        put(
            "Vehicle.Cabin.Infotainment.Media.IsPlaying".into(),
            json!(self.playing),
        );
        put(
            "Vehicle.Cabin.Infotainment.Media.Played.Source".into(),
            json!(self.source),
        );
        put(
            "Vehicle.Cabin.Infotainment.Media.Played.Track".into(),
            json!(self.track),
        );
        put(
            "Vehicle.Cabin.Infotainment.Media.Radio.Frequency".into(),
            json!(self.station_mhz),
        );
        put(
            "Vehicle.Cabin.Infotainment.Media.Radio.Programme".into(),
            json!(self.programme),
        );
        put(
            "Vehicle.Cabin.Infotainment.Navigation.DestinationSet.Name".into(),
            json!(self.destination),
        );
        put(
            "Vehicle.Cabin.Infotainment.Phone.ActiveCall".into(),
            json!(self.active_call),
        );
        put("Vehicle.Speed".into(), json!(self.speed_kmh));
        put(
            "Vehicle.Powertrain.Transmission.SelectedGear".into(),
            json!(self.gear),
        );
        put(
            "Vehicle.Chassis.ParkingBrake.IsEngaged".into(),
            json!(self.parking_brake),
        );
        put(
            "Vehicle.Powertrain.FuelSystem.RelativeLevel".into(),
            json!(self.fuel_percent),
        );
        put("Vehicle.Powertrain.Range".into(), json!(self.range_km));
        put(
            "Vehicle.Exterior.AirTemperature".into(),
            json!(self.outside_celsius),
        );
        for wheel in WHEELS {
            put(
                format!("Vehicle.Chassis.Axle.{}.Tire.Pressure", vss_wheel(wheel)),
                json!(self.tyre_bar[wheel]),
            );
        }
        put(
            "Vehicle.Body.Trunk.Rear.IsOpen".into(),
            json!(self.trunk_open),
        );
        m
    }

    /// The VSS path a seat-indexed signal lives at (for `Changed` signals).
    pub fn temperature_path(seat: &str) -> String {
        format!(
            "Vehicle.Cabin.HVAC.Station.{}.Temperature",
            vss_station(seat)
        )
    }

    pub fn window_path(seat: &str) -> String {
        format!("Vehicle.Cabin.Door.{}.Window.Position", vss_side(seat))
    }

    pub fn seat_heating_path(seat: &str) -> String {
        format!("Vehicle.Cabin.Seat.{}.HeatingLevel", vss_side(seat))
    }
}

/// Returns the canonical `&'static str` for `value` if it is one of `allowed`.
pub fn one_of(allowed: &[&'static str], value: &str) -> Option<&'static str> {
    allowed.iter().copied().find(|a| *a == value)
}
