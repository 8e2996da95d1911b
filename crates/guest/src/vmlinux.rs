//! The uncompressed kernel (an ELF with a PVH entry note) out of a bzImage (`vmlinuz`).
//!
//! A bzImage is the real-mode setup code followed by the protected-mode part; the setup header
//! says where in the latter the compressed kernel ("payload") lies: `payload_offset` (u32 at
//! 0x248, relative to the protected-mode part, which starts after `setup_sects + 1` sectors of
//! 512 bytes) and `payload_length` (u32 at 0x24c). Debian's cloud kernel compresses it with LZ4
//! in the legacy frame format (see [`decompress_lz4_legacy`]).

use crate::error::GuestError;

/// The legacy LZ4 frame magic, 0x184C2102 in little-endian.
pub const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
/// Each block of a legacy frame decompresses to at most this many bytes.
pub const LZ4_LEGACY_BLOCK: usize = 8 << 20;
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// Finds the payload in a bzImage.
pub fn bzimage_payload(bzimage: &[u8]) -> Result<&[u8], GuestError> {
    let bad = |m: &str| GuestError::BadBzImage(m.to_owned());
    if bzimage.len() < 0x250 {
        return Err(bad("shorter than a setup header"));
    }
    if &bzimage[0x202..0x206] != b"HdrS" {
        return Err(bad("no \"HdrS\" setup header signature at 0x202"));
    }
    let version = u16::from_le_bytes([bzimage[0x206], bzimage[0x207]]);
    if version < 0x0208 {
        return Err(GuestError::BadBzImage(format!(
            "boot protocol {version:#06x} has no payload fields (needs 2.08+)"
        )));
    }
    let setup_sects = match bzimage[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let payload_offset = u32_le(bzimage, 0x248) as usize;
    let payload_length = u32_le(bzimage, 0x24c) as usize;
    let start = (setup_sects + 1) * 512 + payload_offset;
    bzimage.get(start..start + payload_length).ok_or_else(|| {
        GuestError::BadBzImage(format!(
            "payload {start}+{payload_length} lies beyond the end of the file ({} bytes)",
            bzimage.len()
        ))
    })
}

/// Extracts the vmlinux ELF from a bzImage whose payload is LZ4 (legacy frame).
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>, GuestError> {
    let payload = bzimage_payload(bzimage)?;
    let vmlinux = decompress_lz4_legacy(payload)?;
    if !vmlinux.starts_with(ELF_MAGIC) {
        return Err(GuestError::NotElf {
            found: hex_prefix(&vmlinux),
        });
    }
    Ok(vmlinux)
}

/// Decompresses an LZ4 legacy frame: the magic, then blocks of [u32 LE compressed size,
/// compressed bytes], each an independent LZ4 block of at most 8 MiB decompressed. The frame
/// has no end marker: it ends at the end of the input or at a size that cannot be a block
/// (the kernel's build appends the decompressed length as a u32, which is checked when it is
/// exactly what is left). A repeated magic starts a concatenated frame.
pub fn decompress_lz4_legacy(input: &[u8]) -> Result<Vec<u8>, GuestError> {
    if input.len() < 4 || input[..4] != LZ4_LEGACY_MAGIC {
        return Err(GuestError::PayloadNotLz4 {
            found: hex_prefix(input),
        });
    }
    // The largest compressed size a block of LZ4_LEGACY_BLOCK bytes can have (LZ4_compressBound).
    let max_block = LZ4_LEGACY_BLOCK + LZ4_LEGACY_BLOCK / 255 + 16;
    let mut out = Vec::new();
    let mut pos = 4;
    while input.len() - pos >= 4 {
        let field = &input[pos..pos + 4];
        if field == LZ4_LEGACY_MAGIC {
            pos += 4;
            continue;
        }
        let size = u32_le(input, pos) as usize;
        let rest = input.len() - pos - 4;
        if size == 0 || size > max_block || size > rest {
            if rest == 0 && size != out.len() {
                return Err(GuestError::BadLz4(format!(
                    "decompressed {} bytes but the kernel's trailer says {size}",
                    out.len()
                )));
            }
            break;
        }
        let block = &input[pos + 4..pos + 4 + size];
        let start = out.len();
        out.resize(start + LZ4_LEGACY_BLOCK, 0);
        let written = lz4_flex::block::decompress_into(block, &mut out[start..])
            .map_err(|e| GuestError::BadLz4(format!("block at offset {pos}: {e}")))?;
        out.truncate(start + written);
        pos += 4 + size;
    }
    if out.is_empty() {
        return Err(GuestError::BadLz4("no data blocks".into()));
    }
    Ok(out)
}

fn u32_le(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn hex_prefix(bytes: &[u8]) -> String {
    let prefix: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    if prefix.is_empty() {
        "(empty)".into()
    } else {
        prefix.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a legacy frame out of independently compressed chunks of `data`.
    fn legacy_frame(data: &[u8], chunk: usize, trailer: bool) -> Vec<u8> {
        let mut frame = LZ4_LEGACY_MAGIC.to_vec();
        for part in data.chunks(chunk) {
            let block = lz4_flex::block::compress(part);
            frame.extend_from_slice(&(block.len() as u32).to_le_bytes());
            frame.extend_from_slice(&block);
        }
        if trailer {
            frame.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
        frame
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 7919) % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn legacy_frame_round_trip() {
        let data = sample(3 * LZ4_LEGACY_BLOCK + 12345);
        for trailer in [false, true] {
            let frame = legacy_frame(&data, LZ4_LEGACY_BLOCK, trailer);
            assert_eq!(decompress_lz4_legacy(&frame).unwrap(), data);
        }
    }

    #[test]
    fn legacy_frame_stops_at_garbage_and_handles_concatenation() {
        let data = sample(100_000);
        let mut frame = legacy_frame(&data[..60_000], LZ4_LEGACY_BLOCK, false);
        frame.extend_from_slice(&legacy_frame(&data[60_000..], 7_000, false));
        // padding after the frame, as in a bzImage: a size far beyond what is left
        frame.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decompress_lz4_legacy(&frame).unwrap(), data);
    }

    #[test]
    fn wrong_trailer_is_an_error() {
        let data = sample(50_000);
        let mut frame = legacy_frame(&data, LZ4_LEGACY_BLOCK, false);
        frame.extend_from_slice(&(49_999u32).to_le_bytes());
        let err = decompress_lz4_legacy(&frame).unwrap_err().to_string();
        assert!(err.contains("trailer says 49999"), "{err}");
    }

    #[test]
    fn other_magic_is_named() {
        let err = decompress_lz4_legacy(&[0x1f, 0x8b, 0x08, 0x00, 1, 2]).unwrap_err();
        assert!(matches!(err, GuestError::PayloadNotLz4 { .. }));
        assert!(err.to_string().contains("found magic 1f 8b 08 00"), "{err}");
    }

    #[test]
    fn corrupt_block_is_an_error() {
        let data = sample(50_000);
        let mut frame = legacy_frame(&data, LZ4_LEGACY_BLOCK, false);
        let len = frame.len();
        frame[len - 40..].fill(0xee);
        assert!(matches!(
            decompress_lz4_legacy(&frame),
            Err(GuestError::BadLz4(_))
        ));
    }

    #[test]
    fn synthetic_bzimage() {
        let elf = [ELF_MAGIC.as_slice(), &sample(20_000)].concat();
        let payload = legacy_frame(&elf, LZ4_LEGACY_BLOCK, true);
        let setup_sects = 3u8;
        let payload_offset = 100usize;
        let mut image = vec![0u8; (setup_sects as usize + 1) * 512 + payload_offset];
        image[0x1f1] = setup_sects;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        image[0x248..0x24c].copy_from_slice(&(payload_offset as u32).to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.extend_from_slice(&payload);
        image.extend_from_slice(&[0u8; 64]); // trailing data after the payload
        assert_eq!(extract_vmlinux(&image).unwrap(), elf);

        let mut not_elf = image.clone();
        let start = 4 * 512 + payload_offset;
        let frame = legacy_frame(&sample(20_000), LZ4_LEGACY_BLOCK, true);
        not_elf.truncate(start);
        not_elf[0x24c..0x250].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        not_elf.extend_from_slice(&frame);
        assert!(matches!(
            extract_vmlinux(&not_elf),
            Err(GuestError::NotElf { .. })
        ));

        let mut short = image.clone();
        short.truncate(start + 10);
        assert!(matches!(
            extract_vmlinux(&short),
            Err(GuestError::BadBzImage(_))
        ));
        assert!(matches!(
            extract_vmlinux(b"MZ"),
            Err(GuestError::BadBzImage(_))
        ));
    }
}
