//! Per-Unix-user cgroups of the login-node guard ([`crate::guard`]): what
//! a capped user runs outside the queue is moved into `labbench-users/uid-N`
//! and held to its CPU quota and memory limit there. labbench makes its own
//! cgroups rather than using systemd's `user-UID.slice`: the same code then
//! works on v1 and v2, with or without systemd, and never fights systemd
//! over a slice it manages.
//!
//! - v1: `memory/labbench-users/uid-N` (`memory.limit_in_bytes`; memory
//!   already charged before a move stays where it was, new memory is
//!   charged here) and `cpu/labbench-users/uid-N` (`cpu.cfs_quota_us`;
//!   `cpuacct.usage` where cpu and cpuacct are mounted together).
//! - v2: `labbench-users/uid-N` under the unified mount (`memory.max`,
//!   `cpu.max`, `cpu.stat`), the controllers enabled in
//!   `labbench-users/cgroup.subtree_control`. Written to the kernel
//!   documentation and tested against a fake hierarchy in a temporary
//!   directory: no v2 host with these controllers was available.
//!
//! On a v2 host where systemd keeps a slice per user
//! (`user.slice/user-UID.slice`), the caps are written to that slice
//! instead and nothing is moved: moving `systemd --user` and its services
//! out of their cgroups would break them. What the user runs outside their
//! slice (a cron job, say) is then not capped.
//!
//! A process inside an experiment's cgroup (`/labbench/…` at the top of the
//! hierarchy, where only root makes cgroups) is never moved: queued work has
//! its own limits.

use std::path::PathBuf;

use super::{CFS_PERIOD_US, Hierarchy, ROOT, quota_us, write};

/// The directory under each hierarchy that holds the users' cgroups.
const BASE: &str = "labbench-users";

/// Where the users' cgroups live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLayout {
    /// One hierarchy per controller under this root (`/sys/fs/cgroup`).
    V1(PathBuf),
    /// The unified hierarchy mounted here.
    V2(PathBuf),
}

/// The users' cgroups of one layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCgroups {
    layout: UserLayout,
}

impl UserCgroups {
    /// The users' cgroups of this host, if labbench may make cgroups.
    pub fn detect() -> Option<UserCgroups> {
        let layout = match super::hierarchy()? {
            Hierarchy::V1 => UserLayout::V1(PathBuf::from(ROOT)),
            Hierarchy::V2(mount) => UserLayout::V2(mount),
        };
        Some(UserCgroups { layout })
    }

    /// The users' cgroups of `layout` (tests use a temporary directory).
    pub fn at(layout: UserLayout) -> UserCgroups {
        UserCgroups { layout }
    }

    /// `v1` or `v2`, for the daemon's start line.
    pub fn version(&self) -> &'static str {
        match self.layout {
            UserLayout::V1(_) => "v1",
            UserLayout::V2(_) => "v2",
        }
    }

    fn leaf(uid: u32) -> String {
        format!("uid-{uid}")
    }

    /// The cgroup directories of `uid`: memory's, cpu's and (where it is
    /// mounted apart) cpuacct's on v1; one on v2.
    fn dirs(&self, uid: u32) -> Vec<PathBuf> {
        match &self.layout {
            UserLayout::V1(root) => {
                let mut mounts: Vec<PathBuf> = Vec::new();
                for controller in ["memory", "cpu", "cpuacct"] {
                    let mount = root.join(controller);
                    // `cpu` and `cpuacct` are often links to one `cpu,cpuacct`.
                    let same = std::fs::canonicalize(&mount).ok();
                    let seen = mounts
                        .iter()
                        .any(|m| std::fs::canonicalize(m).ok() == same && same.is_some());
                    if (controller != "cpuacct" || mount.is_dir()) && !seen {
                        mounts.push(mount);
                    }
                }
                mounts
                    .into_iter()
                    .map(|m| m.join(BASE).join(Self::leaf(uid)))
                    .collect()
            }
            UserLayout::V2(mount) => vec![mount.join(BASE).join(Self::leaf(uid))],
        }
    }

    /// systemd's slice of `uid`, on a v2 host that has one.
    fn slice(&self, uid: u32) -> Option<PathBuf> {
        let UserLayout::V2(mount) = &self.layout else {
            return None;
        };
        let slice = mount.join(format!("user.slice/user-{uid}.slice"));
        slice.is_dir().then_some(slice)
    }

    /// The uids whose cgroups exist (an earlier daemon may have capped them).
    pub fn existing_uids(&self) -> Vec<u32> {
        let base = match &self.layout {
            UserLayout::V1(root) => root.join("memory").join(BASE),
            UserLayout::V2(mount) => mount.join(BASE),
        };
        let Ok(entries) = std::fs::read_dir(base) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("uid-")?.parse().ok())
            .collect()
    }

    /// Makes `uid`'s cgroup if needed and sets its caps (`None`: none).
    pub fn apply(&self, uid: u32, cpus: Option<f64>, memory: Option<u64>) -> std::io::Result<()> {
        if let Some(slice) = self.slice(uid) {
            write(
                &slice.join("memory.max"),
                &memory.map_or("max".to_string(), |m| m.to_string()),
            )?;
            let quota = cpus.map_or("max".to_string(), |c| quota_us(c).to_string());
            return write(&slice.join("cpu.max"), &format!("{quota} {CFS_PERIOD_US}"));
        }
        match &self.layout {
            UserLayout::V1(_) => {
                let dirs = self.dirs(uid);
                for dir in &dirs {
                    std::fs::create_dir_all(dir)?;
                }
                let memory_limit = memory.map_or("-1".to_string(), |m| m.to_string());
                write(&dirs[0].join("memory.limit_in_bytes"), &memory_limit)?;
                write(
                    &dirs[1].join("cpu.cfs_period_us"),
                    &CFS_PERIOD_US.to_string(),
                )?;
                let quota = cpus.map_or("-1".to_string(), |c| quota_us(c).to_string());
                write(&dirs[1].join("cpu.cfs_quota_us"), &quota)
            }
            UserLayout::V2(mount) => {
                let base = mount.join(BASE);
                std::fs::create_dir_all(&base)?;
                // The root hands the controllers down (systemd's does);
                // writing is harmless where it already does.
                let _ = write(&mount.join("cgroup.subtree_control"), "+memory +cpu");
                write(&base.join("cgroup.subtree_control"), "+memory +cpu")?;
                let dir = base.join(Self::leaf(uid));
                std::fs::create_dir_all(&dir)?;
                write(
                    &dir.join("memory.max"),
                    &memory.map_or("max".to_string(), |m| m.to_string()),
                )?;
                let quota = cpus.map_or("max".to_string(), |c| quota_us(c).to_string());
                write(&dir.join("cpu.max"), &format!("{quota} {CFS_PERIOD_US}"))
            }
        }
    }

    /// Moves process `pid` into `uid`'s cgroup.
    pub fn adopt(&self, uid: u32, pid: u32) -> std::io::Result<()> {
        for dir in self.dirs(uid) {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// CPU time `uid`'s cgroup used so far, nanoseconds, where it can be read.
    pub fn cpu_used_ns(&self, uid: u32) -> Option<u64> {
        let dirs = self.slice(uid).map_or_else(|| self.dirs(uid), |s| vec![s]);
        match &self.layout {
            UserLayout::V1(_) => dirs.iter().find_map(|dir| {
                std::fs::read_to_string(dir.join("cpuacct.usage"))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            }),
            UserLayout::V2(_) => {
                let stat = std::fs::read_to_string(dirs[0].join("cpu.stat")).ok()?;
                stat.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|us| us.saturating_mul(1000))
            }
        }
    }

    /// Whether a process whose `/proc/PID/cgroup` reads `membership` should
    /// be moved into `uid`'s cgroup: not when an experiment's cgroup holds
    /// it, nor when it is there already.
    pub fn should_adopt(&self, uid: u32, membership: &str) -> bool {
        if self.slice(uid).is_some() {
            return false;
        }
        let ours = format!("/{BASE}/{}", Self::leaf(uid));
        let mut relevant = membership.lines().filter(|line| {
            // v1 lines name their controllers; v2's line is `0::PATH`.
            let controllers = line.split(':').nth(1).unwrap_or("");
            match self.layout {
                UserLayout::V1(_) => controllers.split(',').any(|c| c == "memory" || c == "cpu"),
                UserLayout::V2(_) => controllers.is_empty(),
            }
        });
        relevant.any(|line| {
            let path = line.splitn(3, ':').nth(2).unwrap_or("");
            let in_experiment = path.starts_with("/labbench/");
            let in_ours = path == ours || path.starts_with(&format!("{ours}/"));
            !in_experiment && !in_ours
        })
    }
}

/// The root a test's fake hierarchy uses.
#[cfg(test)]
fn fake(dir: &std::path::Path, v2: bool) -> UserCgroups {
    UserCgroups::at(if v2 {
        UserLayout::V2(dir.to_path_buf())
    } else {
        UserLayout::V1(dir.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn v2_caps_and_moves_into_one_directory_under_the_unified_mount() {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = fake(dir.path(), true);
        users.apply(1001, Some(2.0), Some(8 << 30)).expect("apply");
        let leaf = dir.path().join("labbench-users/uid-1001");
        assert_eq!(read(leaf.join("memory.max")), (8u64 << 30).to_string());
        assert_eq!(read(leaf.join("cpu.max")), "200000 100000");
        assert_eq!(
            read(dir.path().join("labbench-users/cgroup.subtree_control")),
            "+memory +cpu"
        );
        users.adopt(1001, 4242).expect("adopt");
        assert_eq!(read(leaf.join("cgroup.procs")), "4242");
        users.apply(1001, None, None).expect("uncap");
        assert_eq!(read(leaf.join("memory.max")), "max");
        assert_eq!(read(leaf.join("cpu.max")), "max 100000");
        std::fs::write(leaf.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").expect("stat");
        assert_eq!(users.cpu_used_ns(1001), Some(1_500_000));
        assert!(users.should_adopt(1001, "0::/user.slice/user-1001.slice/session-3.scope\n"));
        assert!(!users.should_adopt(1001, "0::/labbench-users/uid-1001\n"));
        assert!(!users.should_adopt(1001, "0::/labbench/ab12cd/exp-7\n"));
        // Not fooled by a cgroup a user made under their own subtree, nor
        // by a longer uid.
        let made = "0::/user.slice/user-1001.slice/user@1001.service/labbench/x\n";
        assert!(users.should_adopt(1001, made));
        assert!(users.should_adopt(1001, "0::/labbench-users/uid-10011\n"));
        assert_eq!(users.existing_uids(), vec![1001]);
    }

    #[test]
    fn v2_with_systemd_caps_the_users_slice_and_moves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let slice = dir.path().join("user.slice/user-1003.slice");
        std::fs::create_dir_all(&slice).expect("slice");
        let users = fake(dir.path(), true);
        users.apply(1003, Some(4.0), Some(16 << 30)).expect("apply");
        assert_eq!(read(slice.join("memory.max")), (16u64 << 30).to_string());
        assert_eq!(read(slice.join("cpu.max")), "400000 100000");
        let session = "0::/user.slice/user-1003.slice/session-2.scope\n";
        assert!(
            !users.should_adopt(1003, session),
            "its slice holds it already"
        );
        assert!(!dir.path().join("labbench-users/uid-1003").exists());
    }

    #[test]
    fn v1_caps_memory_and_cpu_in_their_own_hierarchies() {
        let dir = tempfile::tempdir().expect("tempdir");
        // cpuacct mounted apart from cpu, as on this development host.
        std::fs::create_dir(dir.path().join("cpuacct")).expect("cpuacct");
        let users = fake(dir.path(), false);
        users.apply(1002, Some(0.5), None).expect("apply");
        let memory = dir.path().join("memory/labbench-users/uid-1002");
        let cpu = dir.path().join("cpu/labbench-users/uid-1002");
        assert_eq!(read(memory.join("memory.limit_in_bytes")), "-1");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
        users.adopt(1002, 99).expect("adopt");
        assert_eq!(read(memory.join("cgroup.procs")), "99");
        assert_eq!(read(cpu.join("cgroup.procs")), "99");
        let cpuacct = dir.path().join("cpuacct/labbench-users/uid-1002");
        assert_eq!(read(cpuacct.join("cgroup.procs")), "99");
        std::fs::write(cpuacct.join("cpuacct.usage"), "2500000000\n").expect("usage");
        assert_eq!(users.cpu_used_ns(1002), Some(2_500_000_000));
        let v1 = "12:memory:/user.slice\n11:cpu,cpuacct:/user.slice\n1:name=systemd:/user.slice\n";
        assert!(users.should_adopt(1002, v1));
        let moved = "12:memory:/labbench-users/uid-1002\n11:cpu,cpuacct:/labbench-users/uid-1002\n";
        assert!(!users.should_adopt(1002, moved));
        let experiment = "12:memory:/labbench/ab12/slot-3\n11:cpu,cpuacct:/labbench/ab12/slot-3\n";
        assert!(!users.should_adopt(1002, experiment));
    }
}
