//! Supervisors kept for the next experiment (cgroup v1 only). A reusable
//! shim ([`super::shim`]) whose experiment ended does not exit: it journals
//! the exit status, reports the end on the ends pipe (believed only once the
//! journal has the status) and waits, idle, in the v1 cgroup slot it ran in.
//! The next experiment of the same Unix identity (same uid, group and
//! groups) runs under it, in that slot: control files still open, CPU time
//! and peak memory reset, limits rewritten where they differ. The launcher
//! hands it the experiment's log and journal files on its socket while the
//! daemon records the start; it is told go once both are done, and one that
//! could not take them is let go, and that experiment fails with the reason
//! (a directory that cannot be made, say).
//!
//! That saves forking a supervisor, moving it into five cgroups and tearing
//! it down again for each experiment: most of what labbench added to a short
//! one. A kept shim still supervises one experiment at a time, so a
//! supervisor killed loses one experiment's exit status, never another's.
//!
//! A supervisor is kept only if it reported the end, its slot holds nothing
//! else (leftovers are killed first) and the slot is fit to be kept (see
//! [`super::cgroup`]); at most 8 are kept, the oldest going first; one that
//! died is never used again. The launcher writes each run journal's first
//! line ([`super::rundirs`]), so the page the supervisor's lines go to is
//! charged to the launcher's memory cgroup: charged to the slot, a page per
//! experiment made it unfit after some dozens of short experiments (21
//! replacements in 1 000 `true` measured), and each replacement costs a new
//! supervisor and cgroup, made on the runner's time.
//!
//! An idle supervisor is a process of its user (about 3 MB resident, mostly
//! shared with the launcher) and counts in that user's memory on the
//! Dashboard. A daemon that stops ends its idle supervisors and removes their
//! slots; after `kill -9` they exit with the launcher, and a busy one exits
//! once its experiment has ended and is journaled. v2 keeps one supervisor
//! per experiment: its counters cannot be reset.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use super::cgroup::{ExperimentCgroup, Slots};
use super::launcher::Launcher;
use super::protocol::Identity;

/// A supervisor's state as its pidfd tells it: [`RUNNING`], [`EXITED`], or
/// anything else when the pidfd failed (then `/proc` tells).
pub type ExitWatch = Arc<AtomicU8>;
/// The supervisor runs.
pub const RUNNING: u8 = 0;
/// The supervisor has exited.
pub const EXITED: u8 = 1;
/// The pidfd failed: ask `/proc`.
pub const UNKNOWN: u8 = 2;

/// Idle supervisors kept at most per daemon.
const MAX_IDLE: usize = 8;

/// An idle supervisor and the cgroup slot it sits in.
#[derive(Debug)]
pub struct IdleShim {
    /// Its pid.
    pub pid: u32,
    /// Its start time (ticks after boot), to recognise it.
    pub start_time: u64,
    /// Whom it runs commands as.
    pub identity: Option<Identity>,
    /// Its slot.
    pub cgroup: ExperimentCgroup,
    /// What its pidfd says.
    pub watch: Option<ExitWatch>,
}

impl IdleShim {
    /// Whether it still runs.
    pub fn alive(&self) -> bool {
        let exited = self
            .watch
            .as_ref()
            .is_some_and(|w| w.load(Ordering::Acquire) == EXITED);
        !exited && crate::sys::procfs::process_running(self.pid, self.start_time)
    }
}

/// One daemon's idle supervisors, oldest first (its runner and its
/// shutdown share it).
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<Vec<IdleShim>>,
    /// Where a retired supervisor's slot is released.
    slots: Arc<Slots>,
}

impl Pool {
    /// An empty pool whose retired supervisors' slots go back to `slots`.
    pub fn new(slots: Arc<Slots>) -> Pool {
        Pool {
            idle: Mutex::default(),
            slots,
        }
    }

    /// The idle supervisor of `identity` used last (its caches are warm),
    /// if one is alive; dead ones met on the way are retired.
    pub fn take(&self, identity: &Option<Identity>, launcher: &Launcher) -> Option<IdleShim> {
        loop {
            let shim = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let at = idle.iter().rposition(|s| s.identity == *identity)?;
                idle.remove(at)
            };
            if shim.alive() {
                return Some(shim);
            }
            self.retire(shim, Some(launcher));
        }
    }

    /// Keeps `shim` for the next experiment; the oldest idle one is retired
    /// if that makes too many.
    pub fn put(&self, shim: IdleShim, launcher: &Launcher) {
        let oldest = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let oldest = (idle.len() >= MAX_IDLE).then(|| idle.remove(0));
            idle.push(shim);
            oldest
        };
        if let Some(oldest) = oldest {
            self.retire(oldest, Some(launcher));
        }
    }

    /// Ends every idle supervisor (when the daemon stops; their slots then
    /// go with the instance's other cgroups).
    pub fn retire_all(&self) {
        let ending: Vec<IdleShim> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for shim in ending {
            self.retire(shim, None);
        }
    }

    /// Ends `shim` (told by its launcher, and killed: it is idle); its slot
    /// is released once it has gone.
    pub fn retire(&self, shim: IdleShim, launcher: Option<&Launcher>) {
        if let Some(launcher) = launcher {
            launcher.retire(shim.pid);
        }
        crate::sys::process::kill_if_same(shim.pid, shim.start_time);
        self.slots.release_when_empty(shim.cgroup);
    }
}
