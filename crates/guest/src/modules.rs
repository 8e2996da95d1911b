//! Kernel modules: what a `.ko` says about itself (its `.modinfo` ELF section) and the order
//! in which a set of modules must be loaded (dependencies first).
//!
//! Debian's package has no `modules.dep` (depmod writes it at install time), so dependencies
//! come from each module's `depends=` string, exactly what depmod reads.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::GuestError;

/// The modules a Zeitwork guest needs: virtio devices over MMIO (both QEMU microvm and
/// Firecracker), block and network, vsock to the host, overlayfs for the root, and the
/// ACPI power button with its input events (QEMU's graceful stop presses it), and
/// virtio-serial for the exec channel (QEMU's; Firecracker's would be vsock).
pub const DEFAULT_MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "vsock",
    "vmw_vsock_virtio_transport",
    "virtio_console",
    "overlay",
    "button",
    "evdev",
];

/// The kernel's name for a module: dashes and underscores are the same, and it is spelled with
/// underscores (`virtio-rng.ko` is module `virtio_rng`).
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name a file stands for: its base name without `.ko` / `.ko.xz`, normalized.
pub fn name_from_path(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    let stem = base
        .strip_suffix(".ko")
        .or_else(|| base.strip_suffix(".ko.xz"))?;
    Some(normalize_name(stem))
}

/// The `key=value` strings of a module's `.modinfo` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    pub entries: Vec<(String, String)>,
}

impl ModInfo {
    /// Parses the raw section: NUL-separated `key=value` strings (runs of NULs are padding).
    pub fn parse(section: &[u8]) -> ModInfo {
        let entries = section
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let s = String::from_utf8_lossy(s);
                let (k, v) = s.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect();
        ModInfo { entries }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The modules this one needs loaded first (`depends=a,b`; empty when there are none).
    pub fn depends(&self) -> Vec<String> {
        self.get("depends")
            .map(|d| {
                d.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(normalize_name)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Reads the `.modinfo` section of a module (a relocatable ELF64 little-endian file).
pub fn read_modinfo(elf: &[u8]) -> Result<ModInfo, String> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if elf[4] != 2 || elf[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let shoff = u64_at(elf, 0x28)? as usize;
    let shentsize = u16_at(elf, 0x3a)? as usize;
    let shnum = u16_at(elf, 0x3c)? as usize;
    let shstrndx = u16_at(elf, 0x3e)? as usize;
    if shentsize < 64 {
        return Err(format!("section header size {shentsize} is too small"));
    }
    let section = |i: usize| -> Result<(u32, &[u8]), String> {
        let at = shoff + i * shentsize;
        let name = u32_at(elf, at)?;
        let kind = u32_at(elf, at + 4)?;
        let offset = u64_at(elf, at + 24)? as usize;
        let size = u64_at(elf, at + 32)? as usize;
        const SHT_NOBITS: u32 = 8;
        let data = if kind == SHT_NOBITS {
            &[][..]
        } else {
            elf.get(offset..offset.saturating_add(size))
                .ok_or(format!("section {i} lies beyond the end"))?
        };
        Ok((name, data))
    };
    if shstrndx >= shnum {
        return Err("no section name table".into());
    }
    let (_, names) = section(shstrndx)?;
    for i in 0..shnum {
        let (name_off, data) = section(i)?;
        let name = names.get(name_off as usize..).unwrap_or_default();
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        if name == b".modinfo" {
            return Ok(ModInfo::parse(data));
        }
    }
    Err("no .modinfo section".into())
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| "truncated ELF".into())
}
fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| "truncated ELF".into())
}
fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| "truncated ELF".into())
}

/// Orders `wanted` and everything they depend on, transitively, so that every module comes
/// after its dependencies. `depends` maps each available module to its dependencies; a name in
/// `builtin` is compiled into the kernel and is skipped. The order is deterministic: a
/// depth-first walk in the order of `wanted` and of each `depends=` list.
pub fn load_order(
    wanted: &[String],
    depends: &BTreeMap<String, Vec<String>>,
    builtin: &BTreeSet<String>,
) -> Result<Vec<String>, OrderError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        name: &str,
        depends: &BTreeMap<String, Vec<String>>,
        builtin: &BTreeSet<String>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), OrderError> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let from = stack.iter().position(|s| s == name).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(name.to_owned());
                return Err(OrderError::Cycle(cycle));
            }
            None => {}
        }
        let Some(deps) = depends.get(name) else {
            if builtin.contains(name) {
                marks.insert(name.to_owned(), Mark::Done);
                return Ok(());
            }
            return Err(OrderError::Missing {
                name: name.to_owned(),
                needed_by: stack.last().cloned(),
            });
        };
        marks.insert(name.to_owned(), Mark::Visiting);
        stack.push(name.to_owned());
        for dep in deps {
            visit(dep, depends, builtin, marks, stack, order)?;
        }
        stack.pop();
        marks.insert(name.to_owned(), Mark::Done);
        order.push(name.to_owned());
        Ok(())
    }

    let mut marks = BTreeMap::new();
    let mut order = Vec::new();
    for name in wanted {
        visit(
            &normalize_name(name),
            depends,
            builtin,
            &mut marks,
            &mut Vec::new(),
            &mut order,
        )?;
    }
    Ok(order)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    Missing {
        name: String,
        needed_by: Option<String>,
    },
    Cycle(Vec<String>),
}

impl OrderError {
    pub(crate) fn into_guest_error(self, release: &str) -> GuestError {
        match self {
            OrderError::Missing { name, needed_by } => GuestError::ModuleNotFound {
                name,
                release: release.to_owned(),
                hint: needed_by
                    .map(|n| format!(" (needed by {n})"))
                    .unwrap_or_default(),
            },
            OrderError::Cycle(chain) => GuestError::ModuleCycle(chain),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }
    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_modinfo_strings() {
        let raw = b"license=GPL\0\0depends=virtio_ring,virtio\0retpoline=Y\0intree=Y\0name=virtio_blk\0vermagic=6.1 SMP mod_unload\0\0\0";
        let info = ModInfo::parse(raw);
        assert_eq!(info.get("name"), Some("virtio_blk"));
        assert_eq!(info.depends(), ["virtio_ring", "virtio"]);
        assert_eq!(info.get("vermagic"), Some("6.1 SMP mod_unload"));
        assert!(
            ModInfo::parse(b"depends=\0name=virtio\0")
                .depends()
                .is_empty()
        );
        assert!(ModInfo::parse(b"name=x\0").depends().is_empty());
        assert_eq!(ModInfo::parse(b"depends=a-b, c\0").depends(), ["a_b", "c"]);
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(
            name_from_path("kernel/drivers/char/hw_random/virtio-rng.ko").as_deref(),
            Some("virtio_rng")
        );
        assert_eq!(
            name_from_path("kernel/fs/overlayfs/overlay.ko.xz").as_deref(),
            Some("overlay")
        );
        assert_eq!(name_from_path("modules.order"), None);
    }

    /// A minimal ELF64 relocatable file with a .modinfo section, as a module has.
    fn tiny_elf(modinfo: &[u8]) -> Vec<u8> {
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        let modinfo_off = elf.len();
        elf.extend_from_slice(modinfo);
        let strtab_off = elf.len();
        elf.extend_from_slice(shstrtab);
        while !elf.len().is_multiple_of(8) {
            elf.push(0);
        }
        let shoff = elf.len();
        let mut sh = |name: u32, kind: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&h);
        };
        sh(0, 0, 0, 0);
        sh(1, 1, modinfo_off, modinfo.len());
        sh(10, 3, strtab_off, shstrtab.len());
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        elf
    }

    #[test]
    fn reads_modinfo_from_elf() {
        let elf = tiny_elf(b"name=virtio_mmio\0depends=virtio,virtio_ring\0");
        let info = read_modinfo(&elf).unwrap();
        assert_eq!(info.get("name"), Some("virtio_mmio"));
        assert_eq!(info.depends(), ["virtio", "virtio_ring"]);
        assert!(read_modinfo(b"not elf").is_err());
        let mut truncated = elf.clone();
        truncated.truncate(elf.len() - 64 - 40); // into the section name table's header
        assert!(read_modinfo(&truncated).is_err());
    }

    #[test]
    fn orders_dependencies_first() {
        let d = deps(&[
            ("virtio", &[]),
            ("virtio_ring", &[]),
            ("virtio_mmio", &["virtio", "virtio_ring"]),
            ("virtio_blk", &["virtio", "virtio_ring"]),
            ("failover", &[]),
            ("net_failover", &["failover"]),
            ("virtio_net", &["net_failover", "virtio", "virtio_ring"]),
            ("vsock", &[]),
            ("vmw_vsock_virtio_transport_common", &["vsock"]),
            (
                "vmw_vsock_virtio_transport",
                &[
                    "vmw_vsock_virtio_transport_common",
                    "virtio",
                    "virtio_ring",
                    "vsock",
                ],
            ),
        ]);
        let builtin = BTreeSet::from(["ext4".to_string()]);
        let order = load_order(
            &names(&[
                "virtio-mmio",
                "virtio_blk",
                "virtio_net",
                "vmw_vsock_virtio_transport",
                "ext4",
            ]),
            &d,
            &builtin,
        )
        .unwrap();
        assert_eq!(
            order,
            [
                "virtio",
                "virtio_ring",
                "virtio_mmio",
                "virtio_blk",
                "failover",
                "net_failover",
                "virtio_net",
                "vsock",
                "vmw_vsock_virtio_transport_common",
                "vmw_vsock_virtio_transport"
            ]
        );
    }

    #[test]
    fn cycle_is_an_error() {
        let d = deps(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("top", &["a"])]);
        let err = load_order(&names(&["top"]), &d, &BTreeSet::new()).unwrap_err();
        assert_eq!(err, OrderError::Cycle(names(&["a", "b", "c", "a"])));
        let msg = err.into_guest_error("6.1").to_string();
        assert!(msg.contains("a -> b -> c -> a"), "{msg}");
    }

    #[test]
    fn missing_module_names_who_needs_it() {
        let d = deps(&[("a", &["gone"])]);
        let err = load_order(&names(&["a"]), &d, &BTreeSet::new()).unwrap_err();
        assert_eq!(
            err,
            OrderError::Missing {
                name: "gone".into(),
                needed_by: Some("a".into())
            }
        );
        let msg = err.into_guest_error("6.1.0-1-cloud-amd64").to_string();
        assert!(
            msg.contains("module gone not found") && msg.contains("needed by a"),
            "{msg}"
        );
        let err = load_order(&names(&["nope"]), &d, &BTreeSet::new()).unwrap_err();
        assert_eq!(
            err,
            OrderError::Missing {
                name: "nope".into(),
                needed_by: None
            }
        );
    }
}
