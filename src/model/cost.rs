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
    /// Prices of one GPU for an hour by model: a model whose name contains
    /// the key (`H100` in `NVIDIA H100 80GB HBM3`, the longest key that
    /// matches, case aside) costs this instead of `gpu_hour`.
    #[serde(default)]
    pub gpu_models: Vec<(String, f64)>,
}

impl Default for CostRates {
    fn default() -> Self {
        CostRates {
            currency: "USD".into(),
            cpu_hour: 0.0,
            gib_hour: 0.0,
            gpu_hour: 0.0,
            gpu_models: Vec::new(),
        }
    }
}

impl CostRates {
    /// The price of one GPU of `model` for an hour (unknown: `gpu_hour`).
    pub fn gpu_hour_of(&self, model: Option<&str>) -> f64 {
        let Some(model) = model.map(str::to_lowercase) else {
            return self.gpu_hour;
        };
        self.gpu_models
            .iter()
            .filter(|(key, _)| model.contains(&key.to_lowercase()))
            .max_by_key(|(key, _)| key.len())
            .map_or(self.gpu_hour, |(_, price)| *price)
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
        Hours::priced_model(cpu, gib, gpu, rates, None)
    }

    /// [`Hours::priced`], the GPUs at the price of `model`.
    pub fn priced_model(
        cpu: f64,
        gib: f64,
        gpu: f64,
        rates: &CostRates,
        model: Option<&str>,
    ) -> Hours {
        Hours {
            cpu_hours: cpu,
            gib_hours: gib,
            gpu_hours: gpu,
            cost: cpu * rates.cpu_hour + gib * rates.gib_hour + gpu * rates.gpu_hour_of(model),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_key_in_a_models_name_sets_its_price() {
        let rates = CostRates {
            gpu_hour: 1.0,
            gpu_models: vec![("H100".into(), 4.0), ("h100 80gb".into(), 5.0)],
            ..CostRates::default()
        };
        assert_eq!(rates.gpu_hour_of(Some("NVIDIA H100 80GB HBM3")), 5.0);
        assert_eq!(rates.gpu_hour_of(Some("NVIDIA H100 NVL")), 4.0);
        assert_eq!(rates.gpu_hour_of(Some("Tesla T4")), 1.0);
        assert_eq!(rates.gpu_hour_of(None), 1.0);
    }
}
