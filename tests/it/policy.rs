//! The generated system-bus policy on a private system-style bus: the HMI group is accepted
//! and hears the assistant's signals, an unprivileged caller is refused and hears nothing, and
//! nobody else may own the assistant's name.
//!
//! Callers run as other users through `setpriv`, which needs root (CI runs as root). The
//! policy's user and group are mapped to accounts every Debian system has: the Cabin user to
//! root, the HMI group to `daemon`; `nobody` is the unprivileged caller.

use crate::common;

use cabin::profile::Profile;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The system bus's default policy, as Debian ships it, plus the simulator's own rule and
/// Cabin's generated policy.
fn system_bus_config(dir: &std::path::Path, cabin_policy: &std::path::Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={dir}/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow own="org.cabin.VehicleSim"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"#,
        dir = dir.display(),
        policy = cabin_policy.display()
    )
}

/// Runs `cabin` as `user` with group `group` (and the user's supplementary groups).
fn cabin_as(
    user: &str,
    group: &str,
    cabin: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", user, "--regid", group, "--init-groups", "--"])
        .arg(cabin)
        .args(args);
    output_within(cmd, Duration::from_secs(30))
}

/// `dbus-monitor` as `user`, printing the assistant's signals it is let receive. It prints a
/// line once it is connected (the bus's `NameAcquired` to it), which this waits for.
fn monitor_as(user: &str, group: &str, address: &str) -> Monitor {
    use std::io::BufRead;
    let mut child = Command::new("setpriv")
        .args(["--reuid", user, "--regid", group, "--init-groups", "--"])
        .args(["dbus-monitor", "--address", address])
        .arg("type='signal',sender='org.cabin.Assistant1'")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dbus-monitor (package dbus) runs");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let first = lines.recv_timeout(Duration::from_secs(20));
    assert!(first.is_ok(), "dbus-monitor as {user} printed nothing");
    Monitor { child, lines }
}

struct Monitor {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Monitor {
    /// The members of the assistant's signals seen, once the monitor is stopped.
    fn members(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.lines
            .iter()
            .filter(|l| l.contains("interface=org.cabin.Assistant1;"))
            .filter_map(|l| l.split("member=").nth(1).map(str::to_string))
            .collect()
    }
}

#[tokio::test]
async fn the_bus_policy_lets_the_hmi_in_and_keeps_others_out() {
    if !is_root() {
        eprintln!("SKIPPED: the policy test runs callers as other users with setpriv, which needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A copy of the binary other users can run (the build directory may be under /root).
    let cabin = dir.path().join("cabin");
    std::fs::copy(CABIN, &cabin).unwrap();
    std::fs::set_permissions(&cabin, std::fs::Permissions::from_mode(0o755)).unwrap();

    let policy = dir.path().join("cabin.conf");
    std::fs::write(
        &policy,
        cabin::daemon::policy::dbus_policy(&Profile::embedded_default(), "root", "daemon"),
    )
    .unwrap();
    let config = dir.path().join("system.conf");
    std::fs::write(&config, system_bus_config(dir.path(), &policy)).unwrap();
    let bus = TestBus::with_config(&config);
    let address = bus.address.clone();
    let _sim = bus.start_sim();
    let _daemon = bus.start_daemon(None).await;
    let hmi_hears = monitor_as("daemon", "daemon", &address);
    let other_hears = monitor_as("nobody", "nogroup", &address);

    // The HMI group may call the assistant.
    let hmi = cabin_as(
        "daemon",
        "daemon",
        &cabin,
        &["say", "--bus", &address, "pause"],
    );
    assert!(
        hmi.status.success(),
        "HMI refused: {}",
        String::from_utf8_lossy(&hmi.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&hmi.stdout).trim(), "Paused.");
    // Only the HMI hears what was said and answered (regression: the policy had no receive
    // rules, so any local user could follow the conversation).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard = hmi_hears.members();
    assert!(heard.iter().any(|m| m == "Reply"), "{heard:?}");
    assert!(heard.iter().any(|m| m == "Transcript"), "{heard:?}");
    assert_eq!(other_hears.members(), Vec::<String>::new());

    // Anybody else may not.
    let other = cabin_as(
        "nobody",
        "nogroup",
        &cabin,
        &["say", "--bus", &address, "pause"],
    );
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("AccessDenied"),
        "refused for the wrong reason: {err}"
    );

    // Nor may anybody else take the assistant's name.
    let squatter = cabin_as(
        "nobody",
        "nogroup",
        &cabin,
        &["run", "--llm", "off", "--bus", &address],
    );
    assert!(!squatter.status.success());
    let err = String::from_utf8_lossy(&squatter.stderr);
    assert!(
        err.contains("does not let this user own org.cabin.Assistant1"),
        "{err}"
    );
}

/// A bus with no ownership policy: any user may connect, own any name and call anyone.
fn open_bus_config(dir: &std::path::Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={dir}/open_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#,
        dir = dir.display()
    )
}

/// Starts a copy of the simulator as `user` on `address`; it owns its name once it says ready.
fn sim_as(user: &str, group: &str, sim: &std::path::Path, address: &str) -> Proc {
    use std::io::BufRead;
    let mut child = Command::new("setpriv")
        .args(["--reuid", user, "--regid", group, "--init-groups", "--"])
        .arg(sim)
        .args(["--bus", address])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("ready"),
        "simulator as {user} printed {line:?}"
    );
    Proc(child)
}

/// Regression (#37): on a bus without an ownership policy, a process could take the vehicle's
/// service name after it died and report "park". The driving state is believed only from a
/// process of the user that served it when Cabin first read it; another's is "state
/// unknown", and refused.
#[tokio::test]
async fn a_driving_state_from_another_user_is_not_believed() {
    if !is_root() {
        eprintln!("SKIPPED: this test runs a process as another user with setpriv, which needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sim = dir.path().join("cabin-vehicle-sim");
    std::fs::copy(SIM, &sim).unwrap();
    std::fs::set_permissions(&sim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("open.conf");
    std::fs::write(&config, open_bus_config(dir.path())).unwrap();
    let bus = TestBus::with_config(&config);
    let vehicle = bus.start_sim();
    let _daemon = bus.start_daemon(None).await;
    let conn = bus.connect().await;
    let boot = |text: &'static str| {
        let conn = conn.clone();
        async move {
            let out = submit(&conn, "SubmitTextJson", text).await.unwrap();
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        }
    };
    // The simulator starts in park.
    let opened = boot("open the boot").await;
    assert_eq!(opened["reply"], "Opening the boot.", "{opened}");
    assert_eq!(boot("close the boot").await["reply"], "Closing the boot.");

    // The vehicle service dies; another user's process takes its name and says "park".
    drop(vehicle);
    let impostor = sim_as("nobody", "nogroup", &sim, &bus.address);
    let refused = boot("open the boot").await;
    assert_eq!(refused["refused"], "gear unknown", "{refused}");
    assert!(refused["action"].is_null(), "{refused}");
    assert_eq!(
        snapshot(&conn).await["Vehicle.Body.Trunk.Rear.IsOpen"],
        false
    );

    // The vehicle's own user serves it again: believed again.
    drop(impostor);
    let _vehicle = bus.start_sim();
    let opened = boot("open the boot").await;
    assert_eq!(opened["reply"], "Opening the boot.", "{opened}");
}
