//! Which D-Bus bus to use: the session bus, the system bus, or an explicit address.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BusAddress {
    #[default]
    Session,
    System,
    /// A D-Bus address such as `unix:path=/run/cabin/bus`.
    Address(String),
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a bus: expected \"session\", \"system\" or a D-Bus address such as \"unix:path=/run/dbus/system_bus_socket\"")]
pub struct BadBus(String);

impl FromStr for BusAddress {
    type Err = BadBus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "session" => Ok(BusAddress::Session),
            "system" => Ok(BusAddress::System),
            a if a.contains(':') && a.contains('=') => Ok(BusAddress::Address(a.to_string())),
            other => Err(BadBus(other.to_string())),
        }
    }
}

impl fmt::Display for BusAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusAddress::Session => write!(f, "session bus"),
            BusAddress::System => write!(f, "system bus"),
            BusAddress::Address(a) => write!(f, "bus at {a}"),
        }
    }
}

impl BusAddress {
    /// A connection builder for this bus; callers add names and interfaces before `build()`.
    pub fn builder(&self) -> zbus::connection::Builder<'static> {
        match self {
            BusAddress::Session => zbus::connection::Builder::session(),
            BusAddress::System => zbus::connection::Builder::system(),
            BusAddress::Address(a) => zbus::connection::Builder::address(a.as_str()),
        }
    }

    pub async fn connect(&self) -> zbus::Result<zbus::Connection> {
        self.builder().build().await
    }
}

/// A private `dbus-daemon`, killed when dropped: what `cabin bench`, the tests and demos on
/// machines without a session bus run against.
pub struct PrivateBus {
    child: std::process::Child,
    pub address: String,
}

impl PrivateBus {
    /// A session-style bus listening in `dir`.
    pub fn start(dir: &std::path::Path) -> std::io::Result<PrivateBus> {
        let listen = format!("unix:path={}", dir.join("bus").display());
        PrivateBus::spawn(std::process::Command::new("dbus-daemon").args([
            "--session",
            "--address",
            &listen,
        ]))
    }

    /// A bus with a configuration of the caller's (`--config-file=…`).
    pub fn spawn(cmd: &mut std::process::Command) -> std::io::Result<PrivateBus> {
        use std::io::BufRead;
        let mut child = crate::runtime::worker::dies_with_parent(cmd)
            .args(["--nofork", "--print-address=1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start dbus-daemon: {e} (fix: install the dbus package, e.g. with scripts/setup)")))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let mut bus = PrivateBus {
            child,
            address: line.trim().to_string(),
        };
        if !bus.address.starts_with("unix:") {
            let _ = bus.child.kill();
            return Err(std::io::Error::other(format!(
                "dbus-daemon did not print its address (it printed {line:?})"
            )));
        }
        Ok(bus)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bus_names_and_addresses() {
        assert_eq!(
            "session".parse::<BusAddress>().unwrap(),
            BusAddress::Session
        );
        assert_eq!("system".parse::<BusAddress>().unwrap(), BusAddress::System);
        assert_eq!(
            "unix:path=/tmp/bus".parse::<BusAddress>().unwrap(),
            BusAddress::Address("unix:path=/tmp/bus".into())
        );
        assert!("sesion".parse::<BusAddress>().is_err());
    }
}
