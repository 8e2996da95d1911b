//! Kernel arguments the guest kernel needs under QEMU's TCG (software emulation).
//!
//! Under TCG the guest's TSC ticks at the host's TSC rate, but the guest kernel measures that
//! rate against the emulated PIT, which only works while emulation keeps up with wall-clock
//! time. On a busy host it fails ("tsc: Unable to calibrate against PIT", "No reference
//! (HPET/PMTIMER) available": microvm has neither) and the boot then hangs forever, with or
//! without `notsc`/`lpj=`. Measured here: 4 guests booted at once on 2 loaded cores all hung;
//! with `tsc_early_khz=<host TSC kHz>` all 4 reached userspace. Under KVM (kvmclock) and
//! Firecracker none of this is needed.

/// `tsc_early_khz=<host TSC kHz>` when the host's TSC frequency is known, else nothing.
pub fn tcg_kernel_args() -> Vec<String> {
    host_tsc_khz()
        .map(|khz| vec![format!("tsc_early_khz={khz}")])
        .unwrap_or_default()
}

/// The host's TSC frequency in kHz, from the first `cpu MHz` line of `/proc/cpuinfo`. That is
/// the TSC frequency exactly on hosts whose kernel knows it (`tsc_known_freq`, as in most VMs);
/// on bare metal with frequency scaling it is the current core clock, an approximation (the
/// guest's clock then runs off by the same ratio; bare metal normally uses KVM instead).
pub fn host_tsc_khz() -> Option<u64> {
    parse_cpu_mhz(&std::fs::read_to_string("/proc/cpuinfo").ok()?)
}

fn parse_cpu_mhz(cpuinfo: &str) -> Option<u64> {
    let value = cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "cpu MHz").then(|| value.trim())
    })?;
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
    let khz = whole.parse::<u64>().ok()? * 1000 + frac.parse::<u64>().ok()?;
    (khz > 0).then_some(khz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_mhz() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.122\ncache size\t: 512 KB\n\nprocessor\t: 1\ncpu MHz\t\t: 1200.000\n";
        assert_eq!(parse_cpu_mhz(text), Some(2_596_122));
        assert_eq!(parse_cpu_mhz("cpu MHz : 3000\n"), Some(3_000_000));
        assert_eq!(parse_cpu_mhz("cpu MHz : 2400.5\n"), Some(2_400_500));
        assert_eq!(parse_cpu_mhz("cpu MHz : 0.000\n"), None);
        assert_eq!(parse_cpu_mhz("model name : x\n"), None);
    }

    #[test]
    fn args_name_the_frequency() {
        for arg in tcg_kernel_args() {
            assert!(
                arg.starts_with("tsc_early_khz=")
                    && arg["tsc_early_khz=".len()..].parse::<u64>().is_ok(),
                "{arg}"
            );
        }
    }
}
