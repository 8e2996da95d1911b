//! Whether KVM can run Linux guests here. `/dev/kvm` alone is not enough: on nested
//! software virtualisation (kvm_pvm) it opens but Linux guests die, so we also require
//! the CPU to advertise vmx or svm (see MACHINE-NOTES). `ZEITWORK_KVM=0|1` overrides.

use std::fs::OpenOptions;

pub fn kvm_usable() -> bool {
    match std::env::var("ZEITWORK_KVM").as_deref() {
        Ok("0") => return false,
        Ok("1") => return true,
        _ => {}
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpu_has_virtualisation(&cpuinfo)
        && OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
}

fn cpu_has_virtualisation(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_vmx_or_svm_in_flags() {
        assert!(cpu_has_virtualisation(
            "processor: 0\nflags\t\t: fpu vme vmx sse\n"
        ));
        assert!(cpu_has_virtualisation("flags : svm"));
        assert!(!cpu_has_virtualisation(
            "flags : fpu sse hypervisor\nmodel name: vmx-like\n"
        ));
    }
}
