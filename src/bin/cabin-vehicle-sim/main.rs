//! `cabin-vehicle-sim`: a D-Bus service that behaves like the default profile's vehicle.
//!
//! Bus name `org.cabin.VehicleSim`; one object per domain under `/org/cabin/VehicleSim/…`
//! (Hvac1, Windows1, Seats1, Lights1, Media1, Navigation1, Phone1, Status1, Body1) and a
//! `Control1` interface at `/org/cabin/VehicleSim` for tests and demos: `Snapshot()`,
//! `Misbehave(mode, delay_ms)`, `SetDriving(speed, gear, parking_brake)` and the
//! `Changed(path, value)` signal carrying VSS-style paths. Arguments are validated and
//! refused with typed `org.cabin.VehicleSim.Error.*` errors, as a real ECU gateway would.

mod comfort;
mod infotainment;
mod sim;
mod state;

use cabin::runtime::bus::BusAddress;
use clap::Parser;
use comfort::{Body, Hvac, Lights, Seats, Windows};
use infotainment::{Media, Navigation, Phone, Status};
use sim::*;
use state::{one_of, VehicleState, GEARS};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zbus::Connection;

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
