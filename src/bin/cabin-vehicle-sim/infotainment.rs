//! The infotainment and status services: media and radio, navigation, the phone, and the
//! car's status (range, tyres, service).

use crate::sim::*;
use crate::state::{one_of, CONTACTS, SOURCES, STATIONS, WHEELS};
use std::sync::Arc;
use zbus::Connection;

/// `name` without the spaces around it, if it is 1 to 200 characters; `what` names it in
/// the error.
fn named(what: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(VehicleError::InvalidArgument(format!(
            "{what} must be 1 to 200 characters"
        )));
    }
    Ok(name.to_string())
}

pub struct Media(pub Arc<Sim>);

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

    /// Plays the station with key `station` (see `STATIONS`) on the radio.
    async fn play_station(
        &self,
        station: &str,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0.gate().await?;
        let Some(&(_, mhz)) = STATIONS.iter().find(|(key, _)| *key == station) else {
            return Err(VehicleError::InvalidArgument(format!(
                "no station '{station}'; expected one of {}",
                STATIONS.map(|s| s.0).join(", ")
            )));
        };
        self.0
            .update(conn, |s| {
                s.station_mhz = mhz;
                s.source = "radio".into();
                s.playing = true;
                Ok(vec![
                    change("Vehicle.Cabin.Infotainment.Media.Radio.Frequency", mhz),
                    change("Vehicle.Cabin.Infotainment.Media.Played.Source", "radio"),
                    change("Vehicle.Cabin.Infotainment.Media.IsPlaying", true),
                ])
            })
            .await
    }

    /// Finds the programme, show or podcast called `name` on the radio and plays it (the
    /// simulator plays it on the current frequency).
    async fn play_programme(
        &self,
        name: &str,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        self.0.gate().await?;
        let name = named("the programme's name", name)?;
        self.0
            .update(conn, |s| {
                s.programme = name.clone();
                s.source = "radio".into();
                s.playing = true;
                Ok(vec![
                    change(
                        "Vehicle.Cabin.Infotainment.Media.Radio.Programme",
                        name.clone(),
                    ),
                    change("Vehicle.Cabin.Infotainment.Media.Played.Source", "radio"),
                    change("Vehicle.Cabin.Infotainment.Media.IsPlaying", true),
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

pub struct Navigation(pub Arc<Sim>);

#[zbus::interface(name = "org.cabin.VehicleSim.Navigation1")]
impl Navigation {
    /// Starts guidance to a named place; returns the destination as the route planner names it.
    async fn set_destination(
        &self,
        place: &str,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        self.0.gate().await?;
        let name = named("the destination", place)?;
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

pub struct Phone(pub Arc<Sim>);

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

pub struct Status(pub Arc<Sim>);

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
