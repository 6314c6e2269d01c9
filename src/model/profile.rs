//! An experiment's use over its run: a series of stretches, each keeping
//! the largest CPU, memory and GPU memory seen in it (downsampled by max,
//! as the per-user series are), and its peak, p95 and mean.

use serde::{Deserialize, Serialize};

/// One stretch of an experiment's use: the largest of each figure in it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UseSample {
    /// Its start, seconds since the epoch.
    pub at: i64,
    /// Its length, seconds.
    pub secs: u32,
    /// CPU cores busy.
    pub cpu_cores: f32,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// GPU memory its processes held, bytes.
    pub gpu_memory_bytes: u64,
}

impl UseSample {
    /// The stretch length for a run `elapsed` seconds old: a second in its
    /// first hour, ten seconds up to ten hours, then a minute (a week-long
    /// run keeps about 20 000 stretches).
    pub fn stretch_for(elapsed: i64) -> u32 {
        if elapsed < 3_600 {
            1
        } else if elapsed < 36_000 {
            10
        } else {
            60
        }
    }
}

/// The peak, 95th percentile and mean of one figure over a run (weighted
/// by time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The largest value.
    pub peak: f64,
    /// The value 95 % of the run's time stayed at or under.
    pub p95: f64,
    /// The mean.
    pub mean: f64,
}

impl Spread {
    /// The spread of `values`, each held for its weight (seconds).
    pub fn of(values: &mut [(f64, f64)]) -> Spread {
        let total: f64 = values.iter().map(|(_, w)| w).sum();
        if values.is_empty() || total <= 0.0 {
            return Spread::default();
        }
        let mean = values.iter().map(|(v, w)| v * w).sum::<f64>() / total;
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        let peak = values.last().map_or(0.0, |(v, _)| *v);
        let mut seen = 0.0;
        let mut p95 = peak;
        for (v, w) in values.iter() {
            seen += w;
            if seen >= 0.95 * total {
                p95 = *v;
                break;
            }
        }
        Spread { peak, p95, mean }
    }
}

/// An experiment's use over its run, against what it asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UseProfile {
    /// CPU cores.
    pub cpu_cores: Spread,
    /// Memory, bytes.
    pub memory_bytes: Spread,
    /// GPU memory, bytes.
    pub gpu_memory_bytes: Spread,
    /// Seconds measured.
    pub seconds: u64,
}

impl UseProfile {
    /// The profile of `samples`; `None` when there are none.
    pub fn of(samples: &[UseSample]) -> Option<UseProfile> {
        if samples.is_empty() {
            return None;
        }
        let figure = |f: &dyn Fn(&UseSample) -> f64| -> Spread {
            let mut values: Vec<(f64, f64)> =
                samples.iter().map(|s| (f(s), f64::from(s.secs))).collect();
            Spread::of(&mut values)
        };
        Some(UseProfile {
            cpu_cores: figure(&|s| f64::from(s.cpu_cores)),
            memory_bytes: figure(&|s| s.memory_bytes as f64),
            gpu_memory_bytes: figure(&|s| s.gpu_memory_bytes as f64),
            seconds: samples.iter().map(|s| u64::from(s.secs)).sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, secs: u32, memory_gib: u64) -> UseSample {
        UseSample {
            at,
            secs,
            cpu_cores: 1.0,
            memory_bytes: memory_gib << 30,
            gpu_memory_bytes: 0,
        }
    }

    #[test]
    fn peak_p95_and_mean_are_weighted_by_time() {
        // 99 seconds at 2 GiB, one second at 9 GiB: a burst.
        let mut samples: Vec<UseSample> = (0..99).map(|i| sample(i, 1, 2)).collect();
        samples.push(sample(99, 1, 9));
        let p = UseProfile::of(&samples).expect("profile");
        assert_eq!(
            p.memory_bytes.peak,
            (9u64 << 30) as f64,
            "the burst is the peak"
        );
        assert_eq!(p.memory_bytes.p95, (2u64 << 30) as f64);
        let mean = p.memory_bytes.mean / (1u64 << 30) as f64;
        assert!((mean - 2.07).abs() < 1e-9, "{mean}");
        assert_eq!(p.seconds, 100);
        // A ten-second stretch weighs ten times a one-second one.
        let long = [sample(0, 10, 8), sample(10, 1, 1)];
        let p = UseProfile::of(&long).expect("profile");
        assert_eq!(p.memory_bytes.p95, (8u64 << 30) as f64);
        assert!(UseProfile::of(&[]).is_none());
    }

    #[test]
    fn stretches_grow_with_the_runs_age() {
        assert_eq!(UseSample::stretch_for(0), 1);
        assert_eq!(UseSample::stretch_for(3_599), 1);
        assert_eq!(UseSample::stretch_for(3_600), 10);
        assert_eq!(UseSample::stretch_for(40_000), 60);
    }
}
