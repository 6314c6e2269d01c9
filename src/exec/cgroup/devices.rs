//! GPU device files an experiment may open: on cgroup v1 the devices
//! controller allows the NVIDIA devices (major 195) of its GPUs only.

use std::path::Path;

use crate::model::HostGpu;

/// Character device major of the NVIDIA GPU files (`/dev/nvidiaN`).
pub const NVIDIA_MAJOR: u32 = 195;

/// Which GPU device files (`/dev/nvidiaN`, by minor number N) an
/// experiment may open: bit N of `present` for each GPU device the host has,
/// of `allowed` for each it was given. Minors 254 and 255 (`nvidia-modeset`,
/// `nvidiactl`) are the driver's own, open to all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuAccess {
    /// The host's GPU device files.
    pub present: [u64; 4],
    /// The experiment's.
    pub allowed: [u64; 4],
}

/// Minors of GPU device files (below the driver's own, 254 and 255).
pub(super) const GPU_MINORS: std::ops::Range<u32> = 0..254;

pub(super) fn has(bits: &[u64; 4], minor: u32) -> bool {
    bits[(minor / 64) as usize] & (1 << (minor % 64)) != 0
}

pub(super) fn set(bits: &mut [u64; 4], minor: u32) {
    bits[(minor / 64) as usize] |= 1 << (minor % 64);
}

impl GpuAccess {
    /// Access to the `given` GPUs (indices) of `host`, the others' device
    /// files denied, and so are those of `also_present` (device files found
    /// on the host whether or not the GPU source lists them: a GPU NVML
    /// cannot read any more is still fenced).
    pub fn new(host: &[HostGpu], also_present: &[u32], given: &[u32]) -> GpuAccess {
        let mut access = GpuAccess::default();
        let listed = host.iter().map(|g| g.minor);
        for minor in listed.chain(also_present.iter().copied()) {
            if GPU_MINORS.contains(&minor) {
                set(&mut access.present, minor);
            }
        }
        for gpu in host.iter().filter(|g| given.contains(&g.index)) {
            if GPU_MINORS.contains(&gpu.minor) {
                set(&mut access.allowed, gpu.minor);
            }
        }
        access
    }

    /// The v1 `devices` rules that grant exactly this access: (file, rule).
    pub(super) fn v1_rules(self) -> impl Iterator<Item = (&'static str, String)> {
        GPU_MINORS
            .filter(move |minor| has(&self.present, *minor))
            .map(move |minor| {
                let file = if has(&self.allowed, minor) {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                (file, format!("c {NVIDIA_MAJOR}:{minor} rwm"))
            })
    }
}

/// Minors of the GPU device files in `dev` (`nvidia0`, `nvidia1`, …).
pub fn gpu_device_minors(dev: &Path) -> Vec<u32> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(dev) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix("nvidia")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .filter(|m| m.file_type().is_char_device())
        .filter(|m| libc::major(m.rdev()) == NVIDIA_MAJOR)
        .map(|m| libc::minor(m.rdev()))
        .collect()
}
