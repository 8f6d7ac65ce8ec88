//! The comfort services: climate, windows, seats, lights and the body (doors, boot).

use crate::sim::*;
use crate::state::{one_of, VehicleState, BRIGHTNESS, COLOURS, HEAT_LEVELS, SEATS};
use std::sync::Arc;
use zbus::Connection;

pub struct Hvac(pub Arc<Sim>);

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

pub struct Windows(pub Arc<Sim>);

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

pub struct Seats(pub Arc<Sim>);

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

pub struct Lights(pub Arc<Sim>);

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

    /// Changes the brightness by `delta` levels within 1..=10 and switches the lights on;
    /// returns the new level.
    async fn adjust_brightness(
        &self,
        delta: i32,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32> {
        self.0.gate().await?;
        let mut level = 0;
        self.0
            .update(conn, |s| {
                let (min, max) = BRIGHTNESS;
                s.brightness =
                    (s.brightness as i64 + delta as i64).clamp(min as i64, max as i64) as u32;
                s.cabin_lights = true;
                level = s.brightness;
                Ok(vec![
                    change("Vehicle.Cabin.Light.Brightness", s.brightness),
                    change("Vehicle.Cabin.Light.IsDomeOn", true),
                ])
            })
            .await?;
        Ok(level)
    }

    #[zbus(property)]
    fn brightness(&self) -> u32 {
        self.0.read(|s| s.brightness)
    }

    /// Sets the brightness level (1..=10) and switches the lights on.
    #[zbus(property)]
    async fn set_brightness(
        &mut self,
        level: u32,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<()> {
        self.0.gate().await.map_err(to_fdo)?;
        let (min, max) = BRIGHTNESS;
        in_range("brightness", level as f64, min as f64, max as f64).map_err(to_fdo)?;
        self.0
            .update(conn, |s| {
                s.brightness = level;
                s.cabin_lights = true;
                Ok(vec![
                    change("Vehicle.Cabin.Light.Brightness", level),
                    change("Vehicle.Cabin.Light.IsDomeOn", true),
                ])
            })
            .await
            .map_err(to_fdo)
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

pub struct Body(pub Arc<Sim>);

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
