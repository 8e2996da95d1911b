//! Is the guest init a static executable? A dynamically linked one needs a loader and
//! libraries the initramfs does not hold, so the kernel finds "No working init found" and
//! every VM panics; the agent refuses such a binary at start instead.

/// `PT_INTERP`: the program header naming the dynamic loader.
const PT_INTERP: u32 = 3;

/// Why `bytes` is not a static x86-64 (or other 64-bit little-endian) ELF executable, or
/// `None` when it is one. Static PIE counts as static: it has no `PT_INTERP`.
pub fn not_static(bytes: &[u8]) -> Option<&'static str> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Some("not an ELF executable");
    }
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian.
    if bytes.get(4..6) != Some(&[2, 1]) {
        return Some("not a 64-bit little-endian ELF executable");
    }
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .and_then(|v| usize::try_from(v).ok())
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Some("its ELF header is truncated");
    };
    for i in 0..phnum {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        let Some(kind) = bytes.get(at..at + 4) else {
            return Some("its program headers are truncated");
        };
        if u32::from_le_bytes([kind[0], kind[1], kind[2], kind[3]]) == PT_INTERP {
            return Some("dynamically linked (it names a program interpreter)");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with one program header of type `kind`.
    fn elf(kind: u32) -> Vec<u8> {
        let mut b = vec![0u8; 0x40 + 0x38];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[0x40..0x44].copy_from_slice(&kind.to_le_bytes());
        b
    }

    #[test]
    fn a_loader_makes_it_dynamic() {
        assert_eq!(not_static(&elf(1)), None, "PT_LOAD only: static");
        assert!(
            not_static(&elf(PT_INTERP))
                .unwrap()
                .contains("dynamically linked")
        );
        assert!(not_static(b"#!/bin/sh\n").is_some());
        assert!(not_static(&elf(1)[..0x30]).is_some(), "truncated");
    }

    #[test]
    fn a_test_binary_is_dynamic() {
        // `cargo test` links the workspace dynamically (no crt-static): a real loader entry.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(not_static(&me).is_some());
    }
}
