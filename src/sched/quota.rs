//! Which quotas hold a queued experiment back: its owner's (their own
//! limits, the default's where they have none), its project's (all its
//! experiments together, whoever runs them), and the monthly ones
//! (GPU-hours and cost reserved this month, as the service last read them).

use std::collections::HashMap;

use crate::model::{Quota, QuotaScope, Resources};

/// Every quota that applies, with what was reserved this month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quotas {
    /// For every user, where their own quota sets no such limit.
    pub default: Quota,
    /// By user.
    pub users: HashMap<String, Quota>,
    /// By project.
    pub projects: HashMap<String, Quota>,
    /// Reserved this month by user (only those a monthly limit applies to).
    pub user_month: HashMap<String, MonthUse>,
    /// Reserved this month by project (likewise).
    pub project_month: HashMap<String, MonthUse>,
}

/// What was reserved in the current month.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MonthUse {
    /// GPU-hours.
    pub gpu_hours: f64,
    /// Their price with everything else reserved.
    pub cost: f64,
}

impl Quotas {
    /// The quotas stored by scope.
    pub fn from_scoped(scoped: impl IntoIterator<Item = (QuotaScope, Quota)>) -> Quotas {
        let mut quotas = Quotas::default();
        for (scope, quota) in scoped {
            quotas.set(scope, quota);
        }
        quotas
    }

    /// Sets the quota of `scope` (a preview's change).
    pub fn set(&mut self, scope: QuotaScope, quota: Quota) {
        match scope {
            QuotaScope::Default => self.default = quota,
            QuotaScope::User(u) => {
                self.users.insert(u, quota);
            }
            QuotaScope::Project(p) => {
                self.projects.insert(p, quota);
            }
        }
    }

    /// What limits `user`: their own quota over the default.
    pub fn for_user(&self, user: &str) -> Quota {
        self.users
            .get(user)
            .copied()
            .unwrap_or_default()
            .or(&self.default)
    }
}

/// What each owner and project holds during one plan, with their limits:
/// each found once per job (by its index), not once per rule.
#[derive(Debug, Default, Clone)]
pub(super) struct Ledger<'a> {
    // Looked up for every queued experiment at each plan: a fast hash.
    owner_index: foldhash::HashMap<&'a str, usize>,
    owners: Vec<Account>,
    project_index: foldhash::HashMap<&'a str, usize>,
    projects: Vec<Account>,
}

/// One owner's or project's limits and holdings in a plan.
#[derive(Debug, Default, Clone)]
struct Account {
    quota: Option<Quota>,
    held: Held,
    month: Option<MonthUse>,
}

impl<'a> Ledger<'a> {
    /// The index of `owner`'s account.
    pub fn owner(&mut self, quotas: &Quotas, owner: &'a str) -> usize {
        let owners = &mut self.owners;
        *self.owner_index.entry(owner).or_insert_with(|| {
            owners.push(Account {
                quota: Some(quotas.for_user(owner)),
                held: Held::default(),
                month: quotas.user_month.get(owner).copied(),
            });
            owners.len() - 1
        })
    }

    /// The index of `project`'s account.
    pub fn project(&mut self, quotas: &Quotas, project: &'a str) -> usize {
        let projects = &mut self.projects;
        *self.project_index.entry(project).or_insert_with(|| {
            projects.push(Account {
                quota: quotas.projects.get(project).copied(),
                held: Held::default(),
                month: quotas.project_month.get(project).copied(),
            });
            projects.len() - 1
        })
    }

    /// Looks every account's limits and month up again in `quotas`.
    pub fn apply(&mut self, quotas: &Quotas) {
        for (name, &i) in &self.owner_index {
            let a = &mut self.owners[i];
            a.quota = Some(quotas.for_user(name));
            a.month = quotas.user_month.get(*name).copied();
        }
        for (name, &i) in &self.project_index {
            let a = &mut self.projects[i];
            a.quota = quotas.projects.get(*name).copied();
            a.month = quotas.project_month.get(*name).copied();
        }
    }

    /// Counts `r` with `gpus` GPUs as held by the owner (and project).
    pub fn hold(&mut self, owner: usize, project: Option<usize>, r: &Resources, gpus: u32) {
        self.owners[owner].held.add(r, gpus);
        if let Some(p) = project {
            self.projects[p].held.add(r, gpus);
        }
    }

    /// Why one more experiment asking `r` may not start: its owner's
    /// quota, else its project's.
    pub fn over(
        &self,
        owner: usize,
        project: Option<usize>,
        r: &Resources,
    ) -> Option<super::WaitReason> {
        let a = &self.owners[owner];
        if let Some(quota) = &a.quota
            && let Some(exceeded) = over_quota(quota, &a.held, a.month.as_ref(), r)
        {
            return Some(super::WaitReason::OverQuota(exceeded));
        }
        let p = &self.projects[project?];
        over_quota(p.quota.as_ref()?, &p.held, p.month.as_ref(), r)
            .map(super::WaitReason::OverProjectQuota)
    }
}

/// What a user or a project holds at once.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Held {
    /// Experiments running.
    pub running: u32,
    /// CPU cores reserved.
    pub cpus: f64,
    /// Memory reserved, bytes.
    pub memory: u64,
    /// GPUs held.
    pub gpus: u32,
}

impl Held {
    /// Counts one more experiment holding `r` with `gpus` GPUs.
    pub fn add(&mut self, r: &Resources, gpus: u32) {
        self.running += 1;
        self.cpus += r.cpus;
        self.memory += r.memory_bytes;
        self.gpus += gpus;
    }
}

/// The quota an experiment would exceed, with what its owner (or project)
/// holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuotaExceeded {
    /// Experiments running at once.
    Running { max: u32 },
    /// CPU cores.
    Cpus { max: f64, held: f64 },
    /// Memory, bytes.
    Memory { max: u64, held: u64 },
    /// GPUs.
    Gpus { max: u32, held: u32 },
    /// GPU-hours reserved this month.
    GpuHours { max: f64, used: f64 },
    /// Cost reserved this month.
    Cost { max: f64, used: f64 },
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::units::short_bytes;
        match *self {
            QuotaExceeded::Running { max } => write!(f, "max {max} running"),
            QuotaExceeded::Cpus { max, held } => write!(f, "max {max} CPUs ({held} in use)"),
            QuotaExceeded::Memory { max, held } => write!(
                f,
                "max {} memory ({} in use)",
                short_bytes(max as f64),
                short_bytes(held as f64)
            ),
            QuotaExceeded::Gpus { max, held } => write!(f, "max {max} GPUs ({held} in use)"),
            QuotaExceeded::GpuHours { max, used } => {
                write!(f, "max {max} GPU-hours a month ({used:.1} reserved)")
            }
            QuotaExceeded::Cost { max, used } => {
                write!(f, "max {max} a month in cost ({used:.2} reserved)")
            }
        }
    }
}

/// Why one more experiment asking `r` may not start under `quota`, given
/// what is `held` and was reserved this `month`, if so.
pub fn over_quota(
    quota: &Quota,
    held: &Held,
    month: Option<&MonthUse>,
    r: &Resources,
) -> Option<QuotaExceeded> {
    if let Some(max) = quota.max_running
        && held.running + 1 > max
    {
        return Some(QuotaExceeded::Running { max });
    }
    if let Some(max) = quota.max_cpus
        && held.cpus + r.cpus > max + 1e-9
    {
        return Some(QuotaExceeded::Cpus {
            max,
            held: held.cpus,
        });
    }
    if let Some(max) = quota.max_memory_bytes
        && held.memory + r.memory_bytes > max
    {
        return Some(QuotaExceeded::Memory {
            max,
            held: held.memory,
        });
    }
    if let Some(max) = quota.max_gpus
        && held.gpus + r.gpus > max
    {
        return Some(QuotaExceeded::Gpus {
            max,
            held: held.gpus,
        });
    }
    month_spent(quota, month.copied().unwrap_or_default(), r.gpus > 0)
}

/// The monthly limit already reached, if any (GPU-hours only matter to
/// experiments that ask for GPUs).
fn month_spent(quota: &Quota, month: MonthUse, wants_gpus: bool) -> Option<QuotaExceeded> {
    if let Some(max) = quota.max_gpu_hours_month
        && wants_gpus
        && month.gpu_hours >= max
    {
        return Some(QuotaExceeded::GpuHours {
            max,
            used: month.gpu_hours,
        });
    }
    if let Some(max) = quota.max_cost_month
        && month.cost >= max
    {
        return Some(QuotaExceeded::Cost {
            max,
            used: month.cost,
        });
    }
    None
}

/// The limit of `quota` that what is `held` (and was reserved this
/// `month`) is already beyond, if any: a user or project over a lowered
/// limit keeps what runs, and starts nothing more until under it.
pub fn beyond(quota: &Quota, held: &Held, month: Option<&MonthUse>) -> Option<QuotaExceeded> {
    if let Some(max) = quota.max_running
        && held.running > max
    {
        return Some(QuotaExceeded::Running { max });
    }
    if let Some(max) = quota.max_cpus
        && held.cpus > max + 1e-9
    {
        return Some(QuotaExceeded::Cpus {
            max,
            held: held.cpus,
        });
    }
    if let Some(max) = quota.max_memory_bytes
        && held.memory > max
    {
        return Some(QuotaExceeded::Memory {
            max,
            held: held.memory,
        });
    }
    if let Some(max) = quota.max_gpus
        && held.gpus > max
    {
        return Some(QuotaExceeded::Gpus {
            max,
            held: held.gpus,
        });
    }
    month_spent(quota, month.copied().unwrap_or_default(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpus: f64, gpus: u32) -> Resources {
        Resources {
            cpus,
            memory_bytes: 1 << 30,
            gpus,
            time_limit_secs: 3600,
        }
    }

    fn cpus(n: f64) -> Resources {
        res(n, 0)
    }

    #[test]
    fn a_limit_reached_stops_one_more_and_only_a_limit_passed_is_beyond() {
        let quota = Quota {
            max_cpus: Some(4.0),
            ..Quota::default()
        };
        let mut held = Held::default();
        held.add(&cpus(4.0), 0);
        assert!(over_quota(&quota, &held, None, &cpus(1.0)).is_some());
        assert_eq!(
            beyond(&quota, &held, None),
            None,
            "at the limit, not past it"
        );
        held.add(&cpus(1.0), 0);
        assert_eq!(
            beyond(&quota, &held, None),
            Some(QuotaExceeded::Cpus {
                max: 4.0,
                held: 5.0
            })
        );
    }

    #[test]
    fn monthly_gpu_hours_hold_back_only_experiments_asking_for_gpus() {
        let quota = Quota {
            max_gpu_hours_month: Some(100.0),
            ..Quota::default()
        };
        let spent = MonthUse {
            gpu_hours: 100.0,
            cost: 0.0,
        };
        let gpu = res(1.0, 1);
        assert!(matches!(
            over_quota(&quota, &Held::default(), Some(&spent), &gpu),
            Some(QuotaExceeded::GpuHours { .. })
        ));
        assert_eq!(
            over_quota(&quota, &Held::default(), Some(&spent), &cpus(1.0)),
            None
        );
        let cost = Quota {
            max_cost_month: Some(50.0),
            ..Quota::default()
        };
        let paid = MonthUse {
            gpu_hours: 0.0,
            cost: 50.0,
        };
        assert!(over_quota(&cost, &Held::default(), Some(&paid), &cpus(1.0)).is_some());
    }
}
