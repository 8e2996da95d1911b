//! The "newc" cpio format (magic `070701`) that the kernel unpacks as an initramfs.
//!
//! Each entry: a 110-byte ASCII header (magic + 13 eight-digit hex fields), the NUL-terminated
//! name, padding to 4 bytes, the data, padding to 4 bytes. The archive ends with an entry named
//! [`TRAILER`]. Names have no leading `/`. Everything is written with uid/gid 0 and mtime 0, so
//! the same inputs give the same bytes.

use std::io::{self, Write};

pub const MAGIC: &[u8; 6] = b"070701";
pub const TRAILER: &str = "TRAILER!!!";
pub const HEADER_LEN: usize = 110;

pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFCHR: u32 = 0o020_000;

/// Writes a newc archive entry by entry. Parent directories must be added before their
/// contents (the kernel creates nothing implicitly). Call [`CpioWriter::finish`] at the end.
pub struct CpioWriter<W: Write> {
    out: W,
    offset: u64,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            offset: 0,
            next_ino: 1,
        }
    }

    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_entry(0, TRAILER, 0, 1, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        if name.is_empty() || name == TRAILER || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio entry name {name:?}"),
            ));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.write_entry(ino, name, mode, nlink, rdev, data)
    }

    fn write_entry(
        &mut self,
        ino: u32,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: larger than 4 GiB"),
            )
        })?;
        let namesize = name.len() + 1;
        let fields: [u32; 13] = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            namesize as u32,
            0, // check
        ];
        let mut header = Vec::with_capacity(HEADER_LEN + namesize + 3);
        header.extend_from_slice(MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        self.write_padded(&header)?;
        self.write_padded(data)
    }

    fn write_padded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        let pad = pad4(self.offset);
        self.out.write_all(&[0u8; 3][..pad])?;
        self.offset += pad as u64;
        Ok(())
    }
}

fn pad4(offset: u64) -> usize {
    ((4 - offset % 4) % 4) as usize
}

/// One entry read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub data: Vec<u8>,
}

/// Reads a whole newc archive, checking magic, field syntax and 4-byte alignment of every
/// header and data block. Stops at the trailer (which is not returned) and fails if there is none.
pub fn read_archive(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    loop {
        if !pos.is_multiple_of(4) {
            return Err(format!("header at {pos} is not 4-byte aligned"));
        }
        let header = bytes
            .get(pos..pos + HEADER_LEN)
            .ok_or(format!("truncated header at {pos} (no trailer)"))?;
        if &header[..6] != MAGIC {
            return Err(format!(
                "bad magic {:?} at {pos}",
                String::from_utf8_lossy(&header[..6])
            ));
        }
        let mut fields = [0u32; 13];
        for (i, field) in fields.iter_mut().enumerate() {
            let hex = std::str::from_utf8(&header[6 + i * 8..14 + i * 8])
                .map_err(|_| format!("non-ASCII header at {pos}"))?;
            *field = u32::from_str_radix(hex, 16)
                .map_err(|_| format!("bad hex field {hex:?} at {pos}"))?;
        }
        let [
            ino,
            mode,
            uid,
            gid,
            nlink,
            _mtime,
            size,
            _dmaj,
            _dmin,
            rmaj,
            rmin,
            namesize,
            _check,
        ] = fields;
        let name_start = pos + HEADER_LEN;
        let name_end = name_start + namesize as usize;
        let name_bytes = bytes
            .get(name_start..name_end)
            .ok_or(format!("truncated name at {pos}"))?;
        let (last, name) = name_bytes
            .split_last()
            .ok_or(format!("empty name at {pos}"))?;
        if *last != 0 {
            return Err(format!("name at {pos} is not NUL-terminated"));
        }
        let name =
            String::from_utf8(name.to_vec()).map_err(|_| format!("non-UTF-8 name at {pos}"))?;
        let data_start = name_end + pad4(name_end as u64);
        let data_end = data_start + size as usize;
        let data = bytes
            .get(data_start..data_end)
            .ok_or(format!("{name}: truncated data"))?;
        let padding = bytes
            .get(data_end..data_end + pad4(data_end as u64))
            .ok_or(format!("{name}: truncated padding"))?;
        if padding.iter().any(|&b| b != 0) || bytes[name_end..data_start].iter().any(|&b| b != 0) {
            return Err(format!("{name}: non-zero padding"));
        }
        pos = data_end + padding.len();
        if name == TRAILER {
            return Ok(entries);
        }
        entries.push(Entry {
            name,
            ino,
            mode,
            uid,
            gid,
            nlink,
            rdev_major: rmaj,
            rdev_minor: rmin,
            data: data.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("dev", 0o755).unwrap();
        w.char_device("/dev/console", 0o600, 5, 1).unwrap();
        w.file("init", 0o755, b"#!hello").unwrap();
        w.file("e", 0o644, b"").unwrap();
        w.file("abc", 0o644, b"1234").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);

        let entries = read_archive(&bytes).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "init", "e", "abc"]);
        assert_eq!(entries[0].mode, S_IFDIR | 0o755);
        assert_eq!(entries[1].mode, S_IFCHR | 0o600);
        assert_eq!((entries[1].rdev_major, entries[1].rdev_minor), (5, 1));
        assert_eq!(entries[2].mode, S_IFREG | 0o755);
        assert_eq!(entries[2].data, b"#!hello");
        assert_eq!(entries[4].data, b"1234");
        let inos: std::collections::HashSet<_> = entries.iter().map(|e| e.ino).collect();
        assert_eq!(inos.len(), entries.len(), "inodes are unique");
        // The trailer is the last thing in the archive.
        let tail = String::from_utf8_lossy(&bytes[bytes.len() - 16..]);
        assert!(tail.contains(TRAILER), "{tail:?}");
    }

    #[test]
    fn header_layout_matches_newc() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("a", 0o644, b"xyz").unwrap();
        let bytes = w.finish().unwrap();
        let header = std::str::from_utf8(&bytes[..HEADER_LEN]).unwrap();
        // ino 1, mode 0100644, uid, gid, nlink 1, mtime, size 3, devs, rdevs, namesize 2, check
        assert_eq!(
            header,
            concat!(
                "070701", "00000001", "000081A4", "00000000", "00000000", "00000001", "00000000",
                "00000003", "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
            )
        );
        // name "a\0" ends at 112: already aligned; data "xyz" + 1 pad byte
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..116], b"xyz\0");
    }

    #[test]
    fn reader_rejects_garbage() {
        assert!(read_archive(b"").is_err());
        assert!(read_archive(&[b'0'; 200]).is_err());
        let mut w = CpioWriter::new(Vec::new());
        w.file("a", 0o644, b"xyz").unwrap();
        let bytes = w.finish().unwrap();
        // Cut before the trailer: no trailer is an error.
        assert!(
            read_archive(&bytes[..116])
                .unwrap_err()
                .contains("no trailer")
        );
    }

    #[test]
    fn bad_names_are_refused() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("", 0o644, b"").is_err());
        assert!(w.file(TRAILER, 0o644, b"").is_err());
    }
}
