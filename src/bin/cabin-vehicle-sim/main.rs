//! `cabin-vehicle-sim`: a D-Bus service that behaves like the default profile's vehicle.
//!
//! Bus name `org.cabin.VehicleSim`; one object per domain under `/org/cabin/VehicleSim/…`
//! (Hvac1, Windows1, Seats1, Lights1, Media1, Navigation1, Phone1, Status1, Body1) and a
//! `Control1` interface at `/org/cabin/VehicleSim` for tests and demos: `Snapshot()`,
//! `Misbehave(mode, delay_ms)`, `SetDriving(speed, gear, parking_brake)` and the
//! `Changed(path, value)` signal carrying VSS-style paths. Arguments are validated and
//! refused with typed `org.cabin.VehicleSim.Error.*` errors, as a real ECU gateway would.

mod state;

use cabin::runtime::bus::BusAddress;
use clap::Parser;
use state::{one_of, VehicleState, COLOURS, CONTACTS, GEARS, HEAT_LEVELS, SEATS, SOURCES, WHEELS};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zbus::Connection;

const NAME: &str = "org.cabin.VehicleSim";
const ROOT: &str = "/org/cabin/VehicleSim";
const CONTROL_IFACE: &str = "org.cabin.VehicleSim.Control1";

#[derive(Parser)]
#[command(
    name = "cabin-vehicle-sim",
    version,
    about = "Simulated vehicle services on D-Bus, for Cabin demos and tests"
)]
struct Args {
    /// Bus to serve on: session, system, or a D-Bus address.
    #[arg(long, default_value = "session")]
    bus: BusAddress,
}

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.cabin.VehicleSim.Error")]
enum VehicleError {
    #[zbus(error)]
    ZBus(zbus::Error),
    OutOfRange(String),
    InvalidArgument(String),
    UnknownContact(String),
    NotAllowed(String),
    /// Injected by `Misbehave("error", …)`.
    Failed(String),
}

type Result<T> = std::result::Result<T, VehicleError>;

/// How the simulator answers domain calls (Control1 always answers normally).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Normal,
    Slow(Duration),
    Error,
}

struct Sim {
    state: Mutex<VehicleState>,
    behaviour: Mutex<Behaviour>,
}

type Change = (String, zbus::Variant<'static>);

impl Sim {
    /// Applies the configured misbehaviour before a domain call.
    async fn gate(&self) -> Result<()> {
        let behaviour = *self.behaviour.lock().expect("behaviour lock");
        match behaviour {
            Behaviour::Normal => Ok(()),
            Behaviour::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Behaviour::Error => Err(VehicleError::Failed(
                "the simulator was told to fail".into(),
            )),
        }
    }

    /// Mutates the state and announces each change as `Control1.Changed(path, value)`.
    async fn update(
        &self,
        conn: &Connection,
        f: impl FnOnce(&mut VehicleState) -> Result<Vec<Change>>,
    ) -> Result<()> {
        let changes = {
            let mut s = self.state.lock().expect("state lock");
            f(&mut s)?
        };
        for (path, value) in changes {
            conn.emit_signal(
                None::<&str>,
                ROOT,
                CONTROL_IFACE,
                "Changed",
                &(path.as_str(), value),
            )
            .await?;
        }
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&VehicleState) -> T) -> T {
        f(&self.state.lock().expect("state lock"))
    }
}

fn seat(value: &str) -> Result<&'static str> {
    one_of(&SEATS, value).ok_or_else(|| {
        VehicleError::InvalidArgument(format!(
            "unknown seat '{value}'; expected one of {}",
            SEATS.join(", ")
        ))
    })
}

fn in_range(what: &str, v: f64, min: f64, max: f64) -> Result<()> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(VehicleError::OutOfRange(format!(
            "{what} {v} is outside {min}..={max}"
        )))
    }
}

fn change(path: &str, v: impl Into<zbus::Variant<'static>>) -> Change {
    (path.to_string(), v.into())
}

struct Hvac(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Hvac1")]
impl Hvac {
    async fn set_power(&self, on: bool, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.hvac_on = on;
                Ok(vec![change("Vehicle.Cabin.HVAC.IsOn", on)])
            })
            .await
    }

    /// Sets one zone's temperature in °C (16..=28).
    async fn set_temperature(
        &self,
        zone: &str,
        celsius: f64,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0.gate().await?;
        let zone = seat(zone)?;
        in_range("temperature", celsius, 16.0, 28.0)?;
        self.0
            .update(conn, |s| {
                s.temperature.insert(zone, celsius);
                Ok(vec![change(&VehicleState::temperature_path(zone), celsius)])
            })
            .await
    }

    /// Changes one zone's temperature by `delta` °C, kept within 16..=28; returns the new value.
    async fn adjust_temperature(
        &self,
        zone: &str,
        delta: f64,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<f64> {
        self.0.gate().await?;
        let zone = seat(zone)?;
        in_range("temperature change", delta, -5.0, 5.0)?;
        let mut now = 0.0;
        self.0
            .update(conn, |s| {
                let t = s
                    .temperature
                    .get_mut(zone)
                    .expect("every seat has a temperature");
                *t = (*t + delta).clamp(16.0, 28.0);
                now = *t;
                Ok(vec![change(&VehicleState::temperature_path(zone), now)])
            })
            .await?;
        Ok(now)
    }

    async fn set_fan_speed(&self, level: u32, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        in_range("fan speed", level as f64, 0.0, 7.0)?;
        self.0
            .update(conn, |s| {
                s.fan_speed = level;
                Ok(vec![change("Vehicle.Cabin.HVAC.FanSpeedLevel", level)])
            })
            .await
    }

    async fn set_air_conditioning(
        &self,
        on: bool,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.air_conditioning = on;
                Ok(vec![change(
                    "Vehicle.Cabin.HVAC.IsAirConditioningActive",
                    on,
                )])
            })
            .await
    }

    /// `screen` is "front" or "rear".
    async fn set_defrost(
        &self,
        screen: &str,
        on: bool,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| match screen {
                "front" => {
                    s.defrost_front = on;
                    Ok(vec![change(
                        "Vehicle.Cabin.HVAC.IsFrontDefrosterActive",
                        on,
                    )])
                }
                "rear" => {
                    s.defrost_rear = on;
                    Ok(vec![change("Vehicle.Cabin.HVAC.IsRearDefrosterActive", on)])
                }
                other => Err(VehicleError::InvalidArgument(format!(
                    "unknown screen '{other}'; expected front or rear"
                ))),
            })
            .await
    }

    #[zbus(property)]
    fn is_on(&self) -> bool {
        self.0.read(|s| s.hvac_on)
    }

    #[zbus(property)]
    fn air_conditioning(&self) -> bool {
        self.0.read(|s| s.air_conditioning)
    }

    #[zbus(property)]
    fn fan_speed(&self) -> u32 {
        self.0.read(|s| s.fan_speed)
    }
}

struct Windows(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Windows1")]
impl Windows {
    /// Opens `window` (a seat, or "all") to `percent_open` (0 closed, 100 fully open).
    async fn set_position(
        &self,
        window: &str,
        percent_open: u32,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0.gate().await?;
        in_range("window position", percent_open as f64, 0.0, 100.0)?;
        let targets: Vec<&'static str> = if window == "all" {
            SEATS.to_vec()
        } else {
            vec![seat(window)?]
        };
        self.0
            .update(conn, |s| {
                Ok(targets
                    .into_iter()
                    .map(|w| {
                        s.window_position.insert(w, percent_open);
                        change(&VehicleState::window_path(w), percent_open)
                    })
                    .collect())
            })
            .await
    }
}

struct Seats(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Seats1")]
impl Seats {
    /// `level` is off, low, medium or high.
    async fn set_heating(
        &self,
        seat_name: &str,
        level: &str,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0.gate().await?;
        let seat_name = seat(seat_name)?;
        let level = one_of(&HEAT_LEVELS, level).ok_or_else(|| {
            VehicleError::InvalidArgument(format!(
                "unknown heating level '{level}'; expected one of {}",
                HEAT_LEVELS.join(", ")
            ))
        })?;
        self.0
            .update(conn, |s| {
                s.seat_heating.insert(seat_name, level);
                Ok(vec![change(
                    &VehicleState::seat_heating_path(seat_name),
                    level,
                )])
            })
            .await
    }
}

struct Lights(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Lights1")]
impl Lights {
    async fn set_cabin_lights(
        &self,
        on: bool,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.cabin_lights = on;
                Ok(vec![change("Vehicle.Cabin.Light.IsDomeOn", on)])
            })
            .await
    }

    async fn set_ambient_colour(
        &self,
        colour: &str,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0.gate().await?;
        let colour = one_of(&COLOURS, colour).ok_or_else(|| {
            VehicleError::InvalidArgument(format!(
                "unknown colour '{colour}'; expected one of {}",
                COLOURS.join(", ")
            ))
        })?;
        self.0
            .update(conn, |s| {
                s.ambient_colour = colour.into();
                Ok(vec![change(
                    "Vehicle.Cabin.Light.AmbientLight.Color",
                    colour,
                )])
            })
            .await
    }
}

struct Media(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Media1")]
impl Media {
    async fn play(&self, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.playing = true;
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.IsPlaying",
                    true,
                )])
            })
            .await
    }

    async fn pause(&self, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.playing = false;
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.IsPlaying",
                    false,
                )])
            })
            .await
    }

    async fn next(&self, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.track += 1;
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.Played.Track",
                    s.track,
                )])
            })
            .await
    }

    async fn previous(&self, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.track = (s.track - 1).max(1);
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.Played.Track",
                    s.track,
                )])
            })
            .await
    }

    /// Changes the volume by `delta` percentage points, clamped to 0..=100.
    async fn adjust_volume(
        &self,
        delta: i32,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32> {
        self.0.gate().await?;
        let mut volume = 0;
        self.0
            .update(conn, |s| {
                s.volume = (s.volume as i64 + delta as i64).clamp(0, 100) as u32;
                volume = s.volume;
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.Volume",
                    s.volume,
                )])
            })
            .await?;
        Ok(volume)
    }

    async fn set_source(&self, source: &str, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        let source = one_of(&SOURCES, source).ok_or_else(|| {
            VehicleError::InvalidArgument(format!(
                "unknown source '{source}'; expected one of {}",
                SOURCES.join(", ")
            ))
        })?;
        self.0
            .update(conn, |s| {
                s.source = source.into();
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.Played.Source",
                    source,
                )])
            })
            .await
    }

    /// Tunes FM to `mhz` (87.5..=108) and switches to the radio.
    async fn tune_radio(&self, mhz: f64, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        in_range("frequency", mhz, 87.5, 108.0)?;
        self.0
            .update(conn, |s| {
                s.station_mhz = mhz;
                s.source = "radio".into();
                Ok(vec![
                    change("Vehicle.Cabin.Infotainment.Media.Radio.Frequency", mhz),
                    change("Vehicle.Cabin.Infotainment.Media.Played.Source", "radio"),
                ])
            })
            .await
    }

    #[zbus(property)]
    fn volume(&self) -> u32 {
        self.0.read(|s| s.volume)
    }

    #[zbus(property)]
    async fn set_volume(
        &mut self,
        volume: u32,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<()> {
        self.0.gate().await.map_err(to_fdo)?;
        in_range("volume", volume as f64, 0.0, 100.0).map_err(to_fdo)?;
        self.0
            .update(conn, |s| {
                s.volume = volume;
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.Volume",
                    volume,
                )])
            })
            .await
            .map_err(to_fdo)
    }

    #[zbus(property)]
    fn muted(&self) -> bool {
        self.0.read(|s| s.muted)
    }

    #[zbus(property)]
    async fn set_muted(
        &mut self,
        muted: bool,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<()> {
        self.0.gate().await.map_err(to_fdo)?;
        self.0
            .update(conn, |s| {
                s.muted = muted;
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.IsMuted",
                    muted,
                )])
            })
            .await
            .map_err(to_fdo)
    }

    #[zbus(property)]
    fn source(&self) -> String {
        self.0.read(|s| s.source.clone())
    }

    #[zbus(property)]
    fn playing(&self) -> bool {
        self.0.read(|s| s.playing)
    }

    /// Plays the media at `level` percent of its volume (an announcement is speaking), until
    /// `Restore`. The volume the driver set is untouched.
    async fn duck(&self, level: u32, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        in_range("level", level as f64, 0.0, 100.0)?;
        self.0
            .update(conn, |s| {
                s.ducked = Some(level);
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.DuckLevel",
                    level,
                )])
            })
            .await
    }

    /// Ends ducking; harmless when the media is not ducked.
    async fn restore(&self, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.ducked = None;
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Media.DuckLevel",
                    100u32,
                )])
            })
            .await
    }

    /// Whether the media is ducked now.
    #[zbus(property)]
    fn ducked(&self) -> bool {
        self.0.read(|s| s.ducked.is_some())
    }
}

/// Property setters can only fail with `fdo::Error`; keep the typed name in the message.
fn to_fdo(e: VehicleError) -> zbus::fdo::Error {
    use zbus::DBusError;
    zbus::fdo::Error::Failed(format!(
        "{}: {}",
        e.name(),
        e.description().unwrap_or_default()
    ))
}

struct Navigation(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Navigation1")]
impl Navigation {
    /// Starts guidance to a named place; returns the destination as the route planner names it.
    async fn set_destination(
        &self,
        place: &str,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        self.0.gate().await?;
        let place = place.trim();
        if place.is_empty() || place.chars().count() > 200 {
            return Err(VehicleError::InvalidArgument(
                "the destination must be 1 to 200 characters".into(),
            ));
        }
        let name = place.to_string();
        self.0
            .update(conn, |s| {
                s.destination = name.clone();
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Navigation.DestinationSet.Name",
                    name.clone(),
                )])
            })
            .await?;
        Ok(name)
    }

    async fn cancel_route(&self, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.destination.clear();
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Navigation.DestinationSet.Name",
                    "",
                )])
            })
            .await
    }

    #[zbus(property)]
    fn destination(&self) -> String {
        self.0.read(|s| s.destination.clone())
    }
}

struct Phone(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Phone1")]
impl Phone {
    /// Calls a contact of the paired phone (Alex, Mum, Office, Sam, Jordan).
    async fn call(&self, contact: &str, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        let Some(name) = CONTACTS
            .iter()
            .find(|c| c.eq_ignore_ascii_case(contact.trim()))
        else {
            return Err(VehicleError::UnknownContact(format!(
                "no contact named '{contact}' on the paired phone"
            )));
        };
        self.0
            .update(conn, |s| {
                s.active_call = name.to_string();
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Phone.ActiveCall",
                    *name,
                )])
            })
            .await
    }

    async fn hang_up(&self, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                s.active_call.clear();
                Ok(vec![change(
                    "Vehicle.Cabin.Infotainment.Phone.ActiveCall",
                    "",
                )])
            })
            .await
    }
}

struct Status(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Status1")]
impl Status {
    /// Pressure of one tyre in bar.
    async fn tyre_pressure(&self, wheel: &str) -> Result<f64> {
        self.0.gate().await?;
        let wheel = one_of(&WHEELS, wheel).ok_or_else(|| {
            VehicleError::InvalidArgument(format!(
                "unknown wheel '{wheel}'; expected one of {}",
                WHEELS.join(", ")
            ))
        })?;
        Ok(self.0.read(|s| s.tyre_bar[wheel]))
    }

    #[zbus(property)]
    fn range_km(&self) -> f64 {
        self.0.read(|s| s.range_km)
    }

    #[zbus(property)]
    fn fuel_level(&self) -> f64 {
        self.0.read(|s| s.fuel_percent)
    }

    #[zbus(property)]
    fn outside_temperature(&self) -> f64 {
        self.0.read(|s| s.outside_celsius)
    }

    #[zbus(property)]
    fn lowest_tyre_pressure(&self) -> f64 {
        self.0.read(|s| s.lowest_tyre_pressure())
    }

    #[zbus(property)]
    fn speed(&self) -> f64 {
        self.0.read(|s| s.speed_kmh)
    }

    #[zbus(property)]
    fn gear(&self) -> String {
        self.0.read(|s| s.gear.clone())
    }

    #[zbus(property)]
    fn parking_brake(&self) -> bool {
        self.0.read(|s| s.parking_brake)
    }
}

struct Body(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Body1")]
impl Body {
    /// Opens or closes the boot; opening is refused unless the car is in park.
    async fn set_trunk(&self, open: bool, #[zbus(connection)] conn: &Connection) -> Result<()> {
        self.0.gate().await?;
        self.0
            .update(conn, |s| {
                if open && s.gear != "park" {
                    return Err(VehicleError::NotAllowed(
                        "the boot opens only in park".into(),
                    ));
                }
                s.trunk_open = open;
                Ok(vec![change("Vehicle.Body.Trunk.Rear.IsOpen", open)])
            })
            .await
    }
}

struct Control(Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Control1")]
impl Control {
    /// Every signal as a JSON object keyed by VSS-style path.
    fn snapshot(&self) -> String {
        serde_json::Value::Object(self.0.read(|s| s.snapshot())).to_string()
    }

    /// mode: "normal", "slow" (every domain call waits delay_ms first) or "error" (every
    /// domain call fails with org.cabin.VehicleSim.Error.Failed).
    fn misbehave(&self, mode: &str, delay_ms: u32) -> Result<()> {
        let b = match mode {
            "normal" => Behaviour::Normal,
            "slow" => Behaviour::Slow(Duration::from_millis(delay_ms.into())),
            "error" => Behaviour::Error,
            other => {
                return Err(VehicleError::InvalidArgument(format!(
                    "unknown mode '{other}'; expected normal, slow or error"
                )))
            }
        };
        *self.0.behaviour.lock().expect("behaviour lock") = b;
        Ok(())
    }

    /// Sets the driving state (km/h, park/reverse/neutral/drive, parking brake); Status1
    /// announces it with PropertiesChanged, as a vehicle gateway would.
    async fn set_driving(
        &self,
        speed_kmh: f64,
        gear: &str,
        parking_brake: bool,
        #[zbus(connection)] conn: &Connection,
        #[zbus(object_server)] server: &zbus::ObjectServer,
    ) -> Result<()> {
        in_range("speed", speed_kmh, 0.0, 300.0)?;
        let gear = one_of(&GEARS, gear).ok_or_else(|| {
            VehicleError::InvalidArgument(format!(
                "unknown gear '{gear}'; expected one of {}",
                GEARS.join(", ")
            ))
        })?;
        self.0
            .update(conn, |s| {
                s.speed_kmh = speed_kmh;
                s.gear = gear.into();
                s.parking_brake = parking_brake;
                Ok(vec![
                    change("Vehicle.Speed", speed_kmh),
                    change("Vehicle.Powertrain.Transmission.SelectedGear", gear),
                    change("Vehicle.Chassis.ParkingBrake.IsEngaged", parking_brake),
                ])
            })
            .await?;
        let status = server
            .interface::<_, Status>(format!("{ROOT}/Status"))
            .await?;
        let emitter = status.signal_emitter();
        let status = status.get().await;
        status.speed_changed(emitter).await?;
        status.gear_changed(emitter).await?;
        status.parking_brake_changed(emitter).await?;
        Ok(())
    }

    /// A signal changed: VSS-style path and new value.
    #[zbus(signal)]
    async fn changed(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        path: &str,
        value: zbus::Variant<'_>,
    ) -> zbus::Result<()>;
}

async fn serve(bus: &BusAddress) -> zbus::Result<Connection> {
    let sim = Arc::new(Sim {
        state: Mutex::new(VehicleState::default()),
        behaviour: Mutex::new(Behaviour::Normal),
    });
    let at = |leaf: &str| format!("{ROOT}/{leaf}");
    bus.builder()
        .serve_at(ROOT, Control(sim.clone()))
        .serve_at(at("Hvac"), Hvac(sim.clone()))
        .serve_at(at("Windows"), Windows(sim.clone()))
        .serve_at(at("Seats"), Seats(sim.clone()))
        .serve_at(at("Lights"), Lights(sim.clone()))
        .serve_at(at("Media"), Media(sim.clone()))
        .serve_at(at("Navigation"), Navigation(sim.clone()))
        .serve_at(at("Phone"), Phone(sim.clone()))
        .serve_at(at("Status"), Status(sim.clone()))
        .serve_at(at("Body"), Body(sim))
        .name(NAME)
        .allow_name_replacements(false)
        .replace_existing_names(false)
        .build()
        .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("cannot listen for SIGTERM");
    let _conn = match serve(&args.bus).await {
        Ok(c) => c,
        Err(zbus::Error::NameTaken) => {
            eprintln!(
                "error: {NAME} is already owned on the {}: another simulator is running",
                args.bus
            );
            return std::process::ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: cannot serve {NAME} on the {}: {e} (fix: start a D-Bus daemon or pass --bus ADDRESS)", args.bus);
            return std::process::ExitCode::FAILURE;
        }
    };
    // Tests and scripts wait for this line.
    println!("ready: {NAME} on the {}", args.bus);
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    std::process::ExitCode::SUCCESS
}
