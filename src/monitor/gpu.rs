//! GPU readings behind one trait: NVML on real hardware, a replayed recording elsewhere.
//!
//! No GPU, no driver, or no NVML library is a normal state ([`GpuReading::Unavailable`]),
//! never an error that stops the monitor.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One GPU at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// Index as CUDA numbers it.
    pub index: u32,
    /// Product name.
    pub name: String,
    /// Busy share, percent (0 where it cannot be read).
    pub utilization_percent: u32,
    /// The driver could not say how busy it is (MIG instances, some
    /// drivers): idle detection counts it as busy.
    #[serde(default)]
    pub utilization_unknown: bool,
    /// Memory in use, bytes.
    pub memory_used: u64,
    /// Memory size, bytes.
    pub memory_total: u64,
    /// Core temperature, °C.
    pub temperature_c: Option<u32>,
    /// Power draw, watts.
    pub power_watts: Option<f64>,
    /// N of its device file `/dev/nvidiaN` (NVML's minor number); `None`
    /// (a recording without it): taken to be the index.
    #[serde(default)]
    pub minor: Option<u32>,
    /// Its UUID (`GPU-…`, NVML's), by which `CUDA_VISIBLE_DEVICES` names it.
    #[serde(default)]
    pub uuid: Option<String>,
}

/// A process holding GPU memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuProcess {
    /// Process id.
    pub pid: u32,
    /// GPU index.
    pub gpu: u32,
    /// GPU memory held, bytes.
    pub memory_bytes: u64,
    /// SM utilisation, percent, where the driver reports it.
    #[serde(default)]
    pub utilization_percent: Option<u32>,
    /// Owner uid, when the source knows it (recordings do; NVML is mapped via /proc).
    #[serde(default)]
    pub uid: Option<u32>,
}

/// Everything read from the GPUs at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// The devices.
    pub gpus: Vec<GpuDevice>,
    /// Processes using them.
    #[serde(default)]
    pub processes: Vec<GpuProcess>,
}

/// The outcome of reading the GPUs.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuReading {
    /// GPUs were read.
    Devices(GpuSample),
    /// No GPU can be read here; the reason says why ("no NVIDIA driver", …).
    Unavailable(String),
}

/// A source of GPU readings.
pub trait GpuSource: Send {
    /// Reads the GPUs now.
    fn read(&mut self) -> GpuReading;
    /// A short description for logs and `host`.
    fn describe(&self) -> String;
}

/// Which GPU source to use, from `--gpu-source` or `monitor.gpu_source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuSourceSpec {
    /// NVML (the NVIDIA driver's library), loaded at run time.
    Nvml,
    /// Replay a recording (JSON lines of [`GpuSample`]).
    Replay(PathBuf),
    /// Do not read GPUs.
    None,
}

impl std::str::FromStr for GpuSourceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nvml" => Ok(GpuSourceSpec::Nvml),
            "none" => Ok(GpuSourceSpec::None),
            _ => match s.strip_prefix("replay:") {
                Some(path) if !path.is_empty() => Ok(GpuSourceSpec::Replay(PathBuf::from(path))),
                _ => Err(format!(
                    "unknown GPU source {s:?}: use nvml, none or replay:FILE"
                )),
            },
        }
    }
}

impl GpuSourceSpec {
    /// Opens the source. NVML that cannot load becomes a source reporting why.
    pub fn open(&self) -> Result<Box<dyn GpuSource>, String> {
        match self {
            GpuSourceSpec::Nvml => Ok(nvml::open()),
            GpuSourceSpec::Replay(path) => Ok(Box::new(ReplaySource::open(path)?)),
            GpuSourceSpec::None => Ok(Box::new(NoGpu("GPU monitoring is off".into()))),
        }
    }
}

/// A source that always reports the same reason for having no GPU.
pub struct NoGpu(pub String);

impl GpuSource for NoGpu {
    fn read(&mut self) -> GpuReading {
        GpuReading::Unavailable(self.0.clone())
    }

    fn describe(&self) -> String {
        format!("none ({})", self.0)
    }
}

/// Replays recorded samples, one per read, cycling at the end.
pub struct ReplaySource {
    path: PathBuf,
    samples: Vec<GpuSample>,
    next: usize,
}

impl ReplaySource {
    /// Loads a recording: one JSON [`GpuSample`] per line (`#` lines are comments).
    pub fn open(path: &Path) -> Result<ReplaySource, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("GPU replay file {}: {e}", path.display()))?;
        ReplaySource::parse(&text, path)
    }

    /// Parses a recording's text.
    pub fn parse(text: &str, path: &Path) -> Result<ReplaySource, String> {
        let mut samples = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut sample: GpuSample = serde_json::from_str(line)
                .map_err(|e| format!("GPU replay file {} line {}: {e}", path.display(), n + 1))?;
            for gpu in &mut sample.gpus {
                gpu.name = crate::units::printable(&gpu.name);
            }
            samples.push(sample);
        }
        if samples.is_empty() {
            return Err(format!("GPU replay file {} has no samples", path.display()));
        }
        Ok(ReplaySource {
            path: path.to_path_buf(),
            samples,
            next: 0,
        })
    }
}

impl GpuSource for ReplaySource {
    fn read(&mut self) -> GpuReading {
        let sample = self.samples[self.next % self.samples.len()].clone();
        self.next = (self.next + 1) % self.samples.len();
        GpuReading::Devices(sample)
    }

    fn describe(&self) -> String {
        format!(
            "replay of {} ({} samples)",
            self.path.display(),
            self.samples.len()
        )
    }
}

/// The NVML path, compiled in every build and loaded at run time.
pub mod nvml {
    use nvml_wrapper::Nvml;
    use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
    use nvml_wrapper::enums::device::UsedGpuMemory;
    use nvml_wrapper::error::NvmlError;

    use super::{GpuDevice, GpuProcess, GpuReading, GpuSample, GpuSource, NoGpu};

    /// Reads GPUs through the NVIDIA driver's NVML library.
    pub struct NvmlSource {
        nvml: Nvml,
        last_seen_us: u64,
    }

    /// Loads NVML, or returns a source that explains why there are no GPUs.
    pub fn open() -> Box<dyn GpuSource> {
        match Nvml::init() {
            Ok(nvml) => Box::new(NvmlSource {
                nvml,
                last_seen_us: 0,
            }),
            Err(e) => Box::new(NoGpu(explain(&e))),
        }
    }

    fn explain(e: &NvmlError) -> String {
        match e {
            NvmlError::LibloadingError(_) => {
                "no NVIDIA driver (the NVML library could not be loaded)".into()
            }
            NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".into(),
            NvmlError::NoPermission => "no permission to read the GPUs".into(),
            other => format!("NVML failed: {other}"),
        }
    }

    impl NvmlSource {
        fn read_all(&mut self) -> Result<GpuSample, NvmlError> {
            let mut sample = GpuSample::default();
            let count = self.nvml.device_count()?;
            let since = self.last_seen_us;
            for index in 0..count {
                let device = self.nvml.device_by_index(index)?;
                let memory = device.memory_info()?;
                sample.gpus.push(GpuDevice {
                    index,
                    name: crate::units::printable(
                        &device.name().unwrap_or_else(|_| "NVIDIA GPU".into()),
                    ),
                    utilization_percent: device.utilization_rates().map(|u| u.gpu).unwrap_or(0),
                    utilization_unknown: device.utilization_rates().is_err(),
                    memory_used: memory.used,
                    memory_total: memory.total,
                    temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
                    power_watts: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
                    minor: device.minor_number().ok(),
                    uuid: device.uuid().ok(),
                });
                let utilization = device.process_utilization_stats(since).unwrap_or_default();
                for sample_util in &utilization {
                    self.last_seen_us = self.last_seen_us.max(sample_util.timestamp);
                }
                let mut processes = device.running_compute_processes().unwrap_or_default();
                processes.extend(device.running_graphics_processes().unwrap_or_default());
                // A process can be in both lists; count it once.
                processes.sort_by_key(|p| p.pid);
                processes.dedup_by_key(|p| p.pid);
                for p in processes {
                    let memory_bytes = match p.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => bytes,
                        UsedGpuMemory::Unavailable => 0,
                    };
                    sample.processes.push(GpuProcess {
                        pid: p.pid,
                        gpu: index,
                        memory_bytes,
                        utilization_percent: utilization
                            .iter()
                            .filter(|u| u.pid == p.pid)
                            .max_by_key(|u| u.timestamp)
                            .map(|u| u.sm_util),
                        uid: None,
                    });
                }
            }
            Ok(sample)
        }
    }

    impl GpuSource for NvmlSource {
        fn read(&mut self) -> GpuReading {
            match self.read_all() {
                Ok(sample) => GpuReading::Devices(sample),
                Err(e) => GpuReading::Unavailable(explain(&e)),
            }
        }

        fn describe(&self) -> String {
            let driver = self
                .nvml
                .sys_driver_version()
                .unwrap_or_else(|_| "unknown".into());
            format!("NVML (driver {driver})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDING: &str = r#"
# two samples of one GPU
{"gpus":[{"index":0,"name":"H100","utilization_percent":90,"memory_used":40000000000,"memory_total":80000000000,"temperature_c":60,"power_watts":300.0}],"processes":[{"pid":10,"gpu":0,"memory_bytes":30000000000,"uid":1001}]}
{"gpus":[{"index":0,"name":"H100","utilization_percent":0,"memory_used":0,"memory_total":80000000000,"temperature_c":40,"power_watts":70.0}],"processes":[]}
"#;

    #[test]
    fn replay_cycles_through_samples() {
        let mut source = ReplaySource::parse(RECORDING, Path::new("rec.jsonl")).expect("parse");
        let GpuReading::Devices(first) = source.read() else {
            panic!("expected devices")
        };
        assert_eq!(first.processes[0].uid, Some(1001));
        let GpuReading::Devices(second) = source.read() else {
            panic!("expected devices")
        };
        assert!(second.processes.is_empty());
        assert_eq!(source.read(), GpuReading::Devices(first));
    }

    #[test]
    fn bad_recording_names_the_line() {
        let err = ReplaySource::parse("{}\n{oops", Path::new("r.jsonl"))
            .err()
            .expect("must fail");
        assert!(err.contains("line 1") || err.contains("line 2"), "{err}");
    }

    #[test]
    fn source_specs_parse() {
        assert_eq!("nvml".parse(), Ok(GpuSourceSpec::Nvml));
        assert_eq!(
            "replay:/x.jsonl".parse(),
            Ok(GpuSourceSpec::Replay("/x.jsonl".into()))
        );
        assert!("replay:".parse::<GpuSourceSpec>().is_err());
        assert!("cuda".parse::<GpuSourceSpec>().is_err());
    }

    #[test]
    fn nvml_without_a_driver_is_a_normal_state() {
        // On machines without the NVIDIA driver this reports why; with one, it reads devices.
        let mut source = nvml::open();
        match source.read() {
            GpuReading::Unavailable(reason) => assert!(!reason.is_empty()),
            GpuReading::Devices(sample) => assert!(!sample.gpus.is_empty()),
        }
    }
}
