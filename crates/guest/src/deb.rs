//! Reading a Debian kernel package (`linux-image-<release>-cloud-amd64_*.deb`) without dpkg:
//! the .deb is an `ar` archive whose `data.tar.xz` member holds `boot/vmlinuz-<release>` and
//! `lib/modules/<release>/…/*.ko`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::GuestError;
use crate::modules::{self, ModInfo};

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const AR_HEADER_LEN: usize = 60;

/// One member of an `ar` archive: its name and where its bytes lie in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArMember {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// Lists the members of an `ar` archive (the common format, as dpkg-deb writes it: names of
/// at most 16 bytes, optionally ending in `/`).
pub fn ar_members<R: Read + Seek>(mut r: R) -> Result<Vec<ArMember>, String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| "too short for an ar archive".to_owned())?;
    if &magic != AR_MAGIC {
        return Err("not an ar archive (no \"!<arch>\" magic)".into());
    }
    let mut members = Vec::new();
    let mut offset = 8u64;
    loop {
        let mut header = [0u8; AR_HEADER_LEN];
        match read_full(&mut r, &mut header).map_err(|e| e.to_string())? {
            0 => return Ok(members),
            AR_HEADER_LEN => {}
            n => {
                return Err(format!(
                    "truncated ar member header at {offset} ({n} bytes)"
                ));
            }
        }
        if &header[58..60] != b"`\n" {
            return Err(format!("bad ar member header at {offset}"));
        }
        let name = String::from_utf8_lossy(&header[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_owned();
        let size_field = String::from_utf8_lossy(&header[48..58]);
        let size: u64 = size_field
            .trim()
            .parse()
            .map_err(|_| format!("bad ar member size {size_field:?} for {name}"))?;
        let data = offset + AR_HEADER_LEN as u64;
        members.push(ArMember {
            name,
            offset: data,
            size,
        });
        // Members start at even offsets.
        offset = data + size + size % 2;
        r.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
    }
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A module file of the package.
#[derive(Debug, Clone)]
pub struct KernelModule {
    /// Path under `lib/modules/<release>/`, always ending in `.ko` (an `.xz` is decompressed).
    pub path: String,
    pub depends: Vec<String>,
    pub bytes: Vec<u8>,
}

/// What the kernel package holds that a guest needs.
#[derive(Debug, Clone)]
pub struct KernelPackage {
    /// `uname -r` of the kernel, e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// The bzImage (`boot/vmlinuz-<release>`).
    pub vmlinuz: Vec<u8>,
    /// Module name → module.
    pub modules: BTreeMap<String, KernelModule>,
    /// Names of modules compiled into the kernel (from `modules.builtin`).
    pub builtin: BTreeSet<String>,
    /// Module files that could not be used (unsupported compression), by module name.
    pub unusable: BTreeMap<String, String>,
}

impl KernelPackage {
    /// The modules to load for `wanted`, dependencies first, as paths relative to
    /// `lib/modules/<release>/`.
    pub fn load_order(&self, wanted: &[String]) -> Result<Vec<&KernelModule>, GuestError> {
        let depends: BTreeMap<String, Vec<String>> = self
            .modules
            .iter()
            .map(|(name, m)| (name.clone(), m.depends.clone()))
            .collect();
        let order = modules::load_order(wanted, &depends, &self.builtin).map_err(|e| {
            let mut err = e.into_guest_error(&self.release);
            if let GuestError::ModuleNotFound { name, hint, .. } = &mut err
                && let Some(path) = self.unusable.get(name.as_str())
            {
                hint.push_str(&format!(
                    " ({path} exists but its compression is not supported)"
                ));
            }
            err
        })?;
        Ok(order.iter().map(|name| &self.modules[name]).collect())
    }
}

/// Reads the kernel and its modules out of a .deb.
pub fn read_kernel_package(deb: &Path) -> Result<KernelPackage, GuestError> {
    let bad = |detail: String| GuestError::BadDeb {
        path: deb.to_owned(),
        detail,
    };
    let mut file = File::open(deb).map_err(GuestError::io(format!("open {}", deb.display())))?;
    let members = ar_members(BufReader::new(&mut file)).map_err(bad)?;
    let data = members
        .iter()
        .find(|m| m.name.starts_with("data.tar"))
        .ok_or_else(|| {
            bad(format!(
                "no data.tar.* member (members: {:?})",
                members.iter().map(|m| &m.name).collect::<Vec<_>>()
            ))
        })?
        .clone();
    file.seek(SeekFrom::Start(data.offset))
        .map_err(GuestError::io(format!("read {}", deb.display())))?;
    let raw = BufReader::with_capacity(1 << 20, file.take(data.size));
    let tar: Box<dyn Read> = match data.name.as_str() {
        "data.tar.xz" => Box::new(xz2::read::XzDecoder::new_multi_decoder(raw)),
        "data.tar" => Box::new(raw),
        other => {
            return Err(bad(format!(
                "{other} is not supported (only data.tar.xz and data.tar)"
            )));
        }
    };
    read_data_tar(tar, deb)
}

/// Reads `data.tar` of a kernel package.
fn read_data_tar(tar: impl Read, deb: &Path) -> Result<KernelPackage, GuestError> {
    let bad = |detail: String| GuestError::BadDeb {
        path: deb.to_owned(),
        detail,
    };
    let mut vmlinuz: Option<(String, Vec<u8>)> = None;
    // (release, module name) → module
    let mut all_modules: BTreeMap<(String, String), KernelModule> = BTreeMap::new();
    let mut builtin: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut unusable: BTreeMap<(String, String), String> = BTreeMap::new();

    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("data.tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("data.tar: {e}")))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| bad(format!("data.tar: {e}")))?
            .to_string_lossy()
            .into_owned();
        let path = path.trim_start_matches("./").trim_start_matches('/');
        let read = |entry: &mut tar::Entry<_>| -> Result<Vec<u8>, GuestError> {
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| bad(format!("{path}: {e}")))?;
            Ok(bytes)
        };
        if let Some(release) = path.strip_prefix("boot/vmlinuz-") {
            if let Some((first, _)) = &vmlinuz {
                return Err(GuestError::SeveralKernels {
                    path: deb.to_owned(),
                    first: first.clone(),
                    second: release.to_owned(),
                });
            }
            let release = release.to_owned();
            vmlinuz = Some((release, read(&mut entry)?));
            continue;
        }
        let Some(rest) = path
            .strip_prefix("usr/")
            .unwrap_or(path)
            .strip_prefix("lib/modules/")
        else {
            continue;
        };
        let Some((release, rel_path)) = rest.split_once('/') else {
            continue;
        };
        if rel_path == "modules.builtin" {
            let text = read(&mut entry)?;
            let names = String::from_utf8_lossy(&text)
                .lines()
                .filter_map(modules::name_from_path)
                .collect();
            builtin.insert(release.to_owned(), names);
            continue;
        }
        let key = |name: String| (release.to_owned(), name);
        if rel_path.ends_with(".ko.zst") || rel_path.ends_with(".ko.gz") {
            let base = rel_path
                .rsplit_once('.')
                .map(|(b, _)| b)
                .unwrap_or(rel_path);
            if let Some(name) = modules::name_from_path(base) {
                unusable.insert(key(name), rel_path.to_owned());
            }
            continue;
        }
        let Some(file_name) = modules::name_from_path(rel_path) else {
            continue;
        };
        let mut bytes = read(&mut entry)?;
        let ko_path = match rel_path.strip_suffix(".xz") {
            Some(ko) => {
                let mut plain = Vec::new();
                xz2::read::XzDecoder::new(bytes.as_slice())
                    .read_to_end(&mut plain)
                    .map_err(|e| GuestError::BadModule {
                        path: rel_path.to_owned(),
                        detail: format!("xz: {e}"),
                    })?;
                bytes = plain;
                ko.to_owned()
            }
            None => rel_path.to_owned(),
        };
        let info: ModInfo =
            modules::read_modinfo(&bytes).map_err(|detail| GuestError::BadModule {
                path: rel_path.to_owned(),
                detail,
            })?;
        let name = info
            .get("name")
            .map(modules::normalize_name)
            .unwrap_or(file_name);
        let module = KernelModule {
            path: ko_path,
            depends: info.depends(),
            bytes,
        };
        if let Some(old) = all_modules.insert(key(name.clone()), module) {
            tracing::warn!(module = %name, kept = %rel_path, dropped = %old.path, "two files for one module");
        }
    }

    let (release, vmlinuz) = vmlinuz.ok_or_else(|| GuestError::NoVmlinuz(deb.to_owned()))?;
    let modules = all_modules
        .into_iter()
        .filter(|((r, _), _)| *r == release)
        .map(|((_, n), m)| (n, m))
        .collect();
    let unusable = unusable
        .into_iter()
        .filter(|((r, _), _)| *r == release)
        .map(|((_, n), p)| (n, p))
        .collect();
    let builtin = builtin.remove(&release).unwrap_or_default();
    Ok(KernelPackage {
        release,
        vmlinuz,
        modules,
        builtin,
        unusable,
    })
}

/// The path of a kernel .deb given by the operator, checked to exist.
pub fn given_deb(path: &Path) -> Result<PathBuf, GuestError> {
    if path.is_file() {
        Ok(path.to_owned())
    } else {
        Err(GuestError::DebMissing(path.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = AR_MAGIC.to_vec();
        for (name, data) in members {
            writeln!(
                out,
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`",
                name,
                0,
                0,
                0,
                "100644",
                data.len()
            )
            .unwrap();
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    #[test]
    fn lists_ar_members_with_odd_sizes() {
        let bytes = ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz/", b"odd"),
            ("data.tar", b"payload!"),
        ]);
        let members = ar_members(Cursor::new(&bytes)).unwrap();
        let names: Vec<_> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["debian-binary", "control.tar.xz", "data.tar"]);
        let data = &members[2];
        assert_eq!(
            &bytes[data.offset as usize..(data.offset + data.size) as usize],
            b"payload!"
        );
        assert_eq!(&bytes[members[1].offset as usize..][..3], b"odd");
    }

    #[test]
    fn rejects_non_ar() {
        assert!(ar_members(Cursor::new(b"PK\x03\x04 zip file")).is_err());
        let mut bytes = ar(&[("data.tar", b"x")]);
        bytes.truncate(bytes.len() - 20);
        assert!(ar_members(Cursor::new(&bytes)).is_err());
    }

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn package_without_kernel_is_refused() {
        let tar = tar_with(&[("./usr/share/doc/x/copyright", b"text")]);
        let deb = ar(&[("debian-binary", b"2.0\n"), ("data.tar", &tar)]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.deb");
        std::fs::write(&path, deb).unwrap();
        let err = read_kernel_package(&path).unwrap_err();
        assert!(matches!(err, GuestError::NoVmlinuz(_)), "{err}");
        assert!(err.to_string().contains("no boot/vmlinuz"), "{err}");
    }

    #[test]
    fn unsupported_data_compression_is_named() {
        let deb = ar(&[("debian-binary", b"2.0\n"), ("data.tar.zst", b"zz")]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.deb");
        std::fs::write(&path, deb).unwrap();
        let err = read_kernel_package(&path).unwrap_err().to_string();
        assert!(err.contains("data.tar.zst is not supported"), "{err}");
    }
}
