//! QEMU's graceful stop. Its microvm has no keyboard controller, so there is no
//! Ctrl-Alt-Del (Firecracker's way); the host presses the ACPI power button instead
//! (QMP `system_powerdown`), which the guest kernel (modules `button` and `evdev`)
//! reports as a `KEY_POWER` press on the button's input device. Init watches that device
//! and turns a press into a SIGTERM for the app, as it does with Ctrl-Alt-Del.

use std::fs::File;
use std::path::{Path, PathBuf};

/// The name the ACPI button driver gives the power button's input device.
const BUTTON_NAME: &str = "Power Button";

/// `struct input_event` on x86_64: a 16-byte `timeval`, then `u16 type`, `u16 code`,
/// `i32 value`.
pub const EVENT_SIZE: usize = 24;
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;

/// The power button's event device, opened for reading; `None` when the VM has none
/// (Firecracker, or a kernel without the modules).
pub fn button() -> Option<File> {
    File::open(find_button(
        Path::new("/sys/class/input"),
        Path::new("/dev/input"),
    )?)
    .ok()
}

/// `<dev>/eventN` for the `eventN` under `class` (sysfs' `/sys/class/input`) whose
/// device is named [`BUTTON_NAME`].
fn find_button(class: &Path, dev: &Path) -> Option<PathBuf> {
    std::fs::read_dir(class)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("event"))
        .find(|e| {
            std::fs::read_to_string(e.path().join("device/name"))
                .is_ok_and(|name| name.trim() == BUTTON_NAME)
        })
        .map(|e| dev.join(e.file_name()))
}

/// Whether `events` (whole `input_event`s, as a read returns them) hold a press of the
/// power button.
pub fn pressed(events: &[u8]) -> bool {
    events.chunks_exact(EVENT_SIZE).any(|event| {
        let field = |at: usize| u16::from_ne_bytes([event[at], event[at + 1]]);
        let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
        field(16) == EV_KEY && field(18) == KEY_POWER && value == 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; 16];
        e.extend(kind.to_ne_bytes());
        e.extend(code.to_ne_bytes());
        e.extend(value.to_ne_bytes());
        e
    }

    #[test]
    fn a_press_is_found_among_the_events_of_a_read() {
        let sync = event(0, 0, 0);
        let press = [event(EV_KEY, KEY_POWER, 1), sync.clone()].concat();
        let release = [event(EV_KEY, KEY_POWER, 0), sync.clone()].concat();
        let other_key = event(EV_KEY, 30, 1);
        assert!(pressed(&press));
        assert!(pressed(&[release.clone(), press].concat()));
        assert!(!pressed(&release));
        assert!(!pressed(&other_key));
        assert!(!pressed(&event(EV_KEY, KEY_POWER, 1)[..EVENT_SIZE - 1]));
    }

    #[test]
    fn the_button_is_found_by_its_device_name() {
        let sys = tempfile::tempdir().unwrap();
        for (event, name) in [
            ("event0", "AT Translated Set 2 keyboard"),
            ("event1", BUTTON_NAME),
        ] {
            std::fs::create_dir_all(sys.path().join(event).join("device")).unwrap();
            std::fs::write(
                sys.path().join(event).join("device/name"),
                format!("{name}\n"),
            )
            .unwrap();
        }
        std::fs::create_dir_all(sys.path().join("input1")).unwrap();
        assert_eq!(
            find_button(sys.path(), Path::new("/dev/input")),
            Some(PathBuf::from("/dev/input/event1"))
        );
        std::fs::remove_dir_all(sys.path().join("event1")).unwrap();
        assert_eq!(find_button(sys.path(), Path::new("/dev/input")), None);
    }
}
