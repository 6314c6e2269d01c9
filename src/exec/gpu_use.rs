//! Which experiment holds which GPU memory: the GPU source lists processes
//! by pid; an experiment owns the pids in its cgroup, or, without one, the
//! processes of its session.
//!
//! The runner measures each running experiment from the monitor's latest GPU
//! sample (once a second): what it holds now and its peak, shown as `live` in
//! `ls --json` (`cpu_cores`, `memory_bytes`, `peak_memory_bytes` from the
//! cgroup, `gpu_memory_bytes`, `peak_gpu_memory_bytes`). The peak is what the
//! daemon that ran the experiment to its end saw: a restart starts it anew.
//! A finished experiment's GPU-seconds are its wall time × the GPUs reserved
//! (GPUs are reserved whole).

use std::collections::HashMap;

use crate::monitor::GpuProcess;

/// GPU memory each experiment's processes hold now, bytes.
///
/// `cgroup_pids` lists the members of experiments confined by a cgroup;
/// `sessions` maps a session id (the shim's pid) to the experiment of those
/// without; `session_of` finds a process's session (read from `/proc`).
pub fn gpu_memory_by_experiment(
    processes: &[GpuProcess],
    cgroup_pids: &HashMap<u64, Vec<i32>>,
    sessions: &HashMap<u32, u64>,
    session_of: impl Fn(u32) -> Option<u32>,
) -> HashMap<u64, u64> {
    let mut owner: HashMap<u32, u64> = HashMap::new();
    for (id, pids) in cgroup_pids {
        for pid in pids {
            if let Ok(pid) = u32::try_from(*pid) {
                owner.insert(pid, *id);
            }
        }
    }
    let mut memory: HashMap<u64, u64> = HashMap::new();
    for p in processes {
        let id = owner
            .get(&p.pid)
            .copied()
            .or_else(|| session_of(p.pid).and_then(|sid| sessions.get(&sid).copied()));
        if let Some(id) = id {
            *memory.entry(id).or_default() += p.memory_bytes;
        }
    }
    memory
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, gpu: u32, gib: u64) -> GpuProcess {
        GpuProcess {
            pid,
            gpu,
            memory_bytes: gib << 30,
            utilization_percent: None,
            uid: Some(1000),
        }
    }

    #[test]
    fn memory_is_summed_per_experiment_over_processes_and_gpus() {
        let processes = [
            process(101, 0, 30),
            process(101, 1, 10),
            process(102, 1, 5),
            process(300, 2, 7),
            process(999, 3, 1),
        ];
        let cgroups = HashMap::from([(1, vec![100, 101, 102])]);
        // Experiment 2 has no cgroup; its shim (pid 299) leads session 299.
        let sessions = HashMap::from([(299, 2)]);
        let session_of = |pid: u32| match pid {
            300 => Some(299),
            _ => Some(pid),
        };
        let memory = gpu_memory_by_experiment(&processes, &cgroups, &sessions, session_of);
        assert_eq!(memory.get(&1), Some(&(45 << 30)));
        assert_eq!(memory.get(&2), Some(&(7 << 30)));
        assert_eq!(memory.len(), 2, "pid 999 belongs to no experiment");
    }
}
