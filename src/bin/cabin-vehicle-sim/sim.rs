//! What every simulated service shares: the vehicle state, how the simulator misbehaves on
//! request, its typed errors, and the checks on arguments.

use crate::state::{one_of, VehicleState, SEATS};
use std::sync::Mutex;
use std::time::Duration;
use zbus::Connection;

pub const NAME: &str = "org.cabin.VehicleSim";
pub const ROOT: &str = "/org/cabin/VehicleSim";
pub const CONTROL_IFACE: &str = "org.cabin.VehicleSim.Control1";

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.cabin.VehicleSim.Error")]
pub enum VehicleError {
    #[zbus(error)]
    ZBus(zbus::Error),
    OutOfRange(String),
    InvalidArgument(String),
    UnknownContact(String),
    NotAllowed(String),
    /// Injected by `Misbehave("error", …)`.
    Failed(String),
}

pub type Result<T> = std::result::Result<T, VehicleError>;

/// How the simulator answers domain calls (Control1 always answers normally).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    Normal,
    Slow(Duration),
    Error,
}

pub struct Sim {
    pub state: Mutex<VehicleState>,
    pub behaviour: Mutex<Behaviour>,
}

type Change = (String, zbus::Variant<'static>);

impl Sim {
    /// Applies the configured misbehaviour before a domain call.
    pub async fn gate(&self) -> Result<()> {
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
    pub async fn update(
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

    pub fn read<T>(&self, f: impl FnOnce(&VehicleState) -> T) -> T {
        f(&self.state.lock().expect("state lock"))
    }
}

pub fn seat(value: &str) -> Result<&'static str> {
    one_of(&SEATS, value).ok_or_else(|| {
        VehicleError::InvalidArgument(format!(
            "unknown seat '{value}'; expected one of {}",
            SEATS.join(", ")
        ))
    })
}

pub fn in_range(what: &str, v: f64, min: f64, max: f64) -> Result<()> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(VehicleError::OutOfRange(format!(
            "{what} {v} is outside {min}..={max}"
        )))
    }
}

pub fn change(path: &str, v: impl Into<zbus::Variant<'static>>) -> Change {
    (path.to_string(), v.into())
}

/// Property setters can only fail with `fdo::Error`; keep the typed name in the message.
pub fn to_fdo(e: VehicleError) -> zbus::fdo::Error {
    use zbus::DBusError;
    zbus::fdo::Error::Failed(format!(
        "{}: {}",
        e.name(),
        e.description().unwrap_or_default()
    ))
}
