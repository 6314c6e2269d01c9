//! What compute costs: rates an admin sets, and hours priced by them.

use serde::{Deserialize, Serialize};

/// Prices per hour of what experiments reserve or use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRates {
    /// The currency the prices are in (a label: `EUR`, `USD`, `credits`).
    pub currency: String,
    /// Price of one CPU core for an hour.
    pub cpu_hour: f64,
    /// Price of one GiB of memory for an hour.
    pub gib_hour: f64,
    /// Price of one GPU for an hour.
    pub gpu_hour: f64,
}

impl Default for CostRates {
    fn default() -> Self {
        CostRates {
            currency: "USD".into(),
            cpu_hour: 0.0,
            gib_hour: 0.0,
            gpu_hour: 0.0,
        }
    }
}

/// Core-, GiB- and GPU-hours, and what they cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Hours {
    /// CPU core-hours.
    pub cpu_hours: f64,
    /// Memory GiB-hours.
    pub gib_hours: f64,
    /// GPU-hours.
    pub gpu_hours: f64,
    /// Their price at the rates.
    pub cost: f64,
}

impl Hours {
    /// `cpu`, `gib` and `gpu` hours priced at `rates`.
    pub fn priced(cpu: f64, gib: f64, gpu: f64, rates: &CostRates) -> Hours {
        Hours {
            cpu_hours: cpu,
            gib_hours: gib,
            gpu_hours: gpu,
            cost: cpu * rates.cpu_hour + gib * rates.gib_hour + gpu * rates.gpu_hour,
        }
    }

    /// `self` scaled by `share` (a part of a run).
    pub fn scaled(self, share: f64) -> Hours {
        Hours {
            cpu_hours: self.cpu_hours * share,
            gib_hours: self.gib_hours * share,
            gpu_hours: self.gpu_hours * share,
            cost: self.cost * share,
        }
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: Hours) {
        self.cpu_hours += other.cpu_hours;
        self.gib_hours += other.gib_hours;
        self.gpu_hours += other.gpu_hours;
        self.cost += other.cost;
    }
}
