//! Which cgroup hierarchy the host has (v2, or v1 with its controllers),
//! and whether labbench may make cgroups in it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{ROOT, write};

/// v1 controllers an experiment is placed in (and must all be writable).
pub(super) const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "freezer"];

/// [`V1_CONTROLLERS`] and `devices`, where that one is mounted and writable.
pub(super) const V1_WITH_DEVICES: [&str; 6] =
    ["memory", "cpu", "cpuacct", "pids", "freezer", "devices"];

/// v2 controllers an experiment needs.
pub(super) const V2_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// Which cgroup interface this host offers labbench.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Unified hierarchy mounted at this path.
    V2(PathBuf),
    /// One hierarchy per controller under `/sys/fs/cgroup`.
    V1,
}

/// The hierarchy labbench can use here, if any (checked once; v2 first).
pub fn hierarchy() -> Option<Hierarchy> {
    static FOUND: std::sync::OnceLock<Option<Hierarchy>> = std::sync::OnceLock::new();
    FOUND.get_or_init(detect).clone()
}

/// The v1 controllers experiments are placed in here: `devices` too where
/// it can be used (checked once).
pub(super) fn v1_controllers() -> &'static [&'static str] {
    static DEVICES: OnceLock<bool> = OnceLock::new();
    let devices = *DEVICES.get_or_init(|| {
        // Only under a parent that allows every device: where it denies by
        // default (a container's), a deny rule is taken and does nothing.
        let dir = Path::new(ROOT).join("devices").join("labbench");
        std::fs::create_dir_all(&dir).is_ok()
            && std::fs::read_to_string(dir.join("devices.list"))
                .is_ok_and(|list| list.lines().any(|l| l.trim() == "a *:* rwm"))
            && can_make_cgroups_in(&dir)
    });
    if devices {
        &V1_WITH_DEVICES
    } else {
        &V1_CONTROLLERS
    }
}

/// Whether experiments are kept from the GPUs they were not given (v1 with
/// the `devices` controller), else only told which to use.
pub fn gpu_devices_enforced() -> bool {
    hierarchy() == Some(Hierarchy::V1) && v1_controllers().contains(&"devices")
}

/// Whether this host lets labbench create cgroups.
pub fn available() -> bool {
    hierarchy().is_some()
}

pub(super) fn detect() -> Option<Hierarchy> {
    for mount in [PathBuf::from(ROOT), Path::new(ROOT).join("unified")] {
        if prepare_v2(&mount).is_ok() {
            return Some(Hierarchy::V2(mount));
        }
    }
    let v1 = V1_CONTROLLERS.iter().all(|c| {
        let dir = Path::new(ROOT).join(c).join("labbench");
        std::fs::create_dir_all(&dir).is_ok()
            && dir.join("cgroup.procs").exists()
            && can_make_cgroups_in(&dir)
    });
    v1.then_some(Hierarchy::V1)
}

/// Whether this process may make cgroups in `dir` (one made there by a
/// daemon running as root earlier may not be this one's to use).
pub(super) fn can_make_cgroups_in(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    let made = std::fs::create_dir(&probe).is_ok();
    made && std::fs::remove_dir(&probe).is_ok()
}

/// Whether the words of a `cgroup.controllers` file include every needed one.
pub fn has_v2_controllers(controllers: &str) -> bool {
    let present: Vec<&str> = controllers.split_whitespace().collect();
    V2_CONTROLLERS.iter().all(|c| present.contains(c))
}

/// Makes `mount/labbench` able to hand the v2 controllers to its children.
pub(super) fn prepare_v2(mount: &Path) -> std::io::Result<()> {
    let unavailable = || std::io::Error::other("v2 controllers unavailable");
    let controllers = std::fs::read_to_string(mount.join("cgroup.controllers"))?;
    if !has_v2_controllers(&controllers) {
        return Err(unavailable());
    }
    let enable = V2_CONTROLLERS
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    // The root may already delegate them (systemd does); writing is harmless.
    let _ = std::fs::write(mount.join("cgroup.subtree_control"), &enable);
    let base = mount.join("labbench");
    std::fs::create_dir_all(&base)?;
    if !has_v2_controllers(&std::fs::read_to_string(base.join("cgroup.controllers"))?)
        || !can_make_cgroups_in(&base)
    {
        return Err(unavailable());
    }
    write(&base.join("cgroup.subtree_control"), &enable)
}
