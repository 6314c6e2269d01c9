//! Which quotas hold a queued experiment back: its owner's (their own
//! limits, the default's where they have none), its project's (all its
//! experiments together, whoever runs them), and the monthly ones
//! (GPU-hours and cost reserved this month, as the service last read them).
//!
//! A monthly limit counts what a start would reserve, up front, as Slurm's
//! `GrpTRESMins` does: the run's GPUs (and its priced request) for its whole
//! wall-time limit, and for running experiments what their limits still
//! hold. An experiment starts only if all of that fits in what is left, so
//! a limit cannot be passed by many starts at once or one long run.

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
    /// The prices of reservations, for monthly cost limits.
    pub rates: crate::model::CostRates,
}

/// What was reserved in the current month.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MonthUse {
    /// GPU-hours.
    pub gpu_hours: f64,
    /// Their price with everything else reserved.
    pub cost: f64,
}

impl MonthUse {
    /// What `r` reserves for `secs`, priced at `rates`.
    pub fn reserving(r: &Resources, secs: i64, rates: &crate::model::CostRates) -> MonthUse {
        let hours = secs.max(0) as f64 / 3600.0;
        let priced = crate::model::Hours::priced(
            r.cpus * hours,
            r.memory_bytes as f64 / (1u64 << 30) as f64 * hours,
            f64::from(r.gpus) * hours,
            rates,
        );
        MonthUse {
            gpu_hours: priced.gpu_hours,
            cost: priced.cost,
        }
    }

    fn add(&mut self, more: MonthUse) {
        self.gpu_hours += more.gpu_hours;
        self.cost += more.cost;
    }
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
    /// Reserved this month as the service read it (replaced by `apply`).
    month: Option<MonthUse>,
    /// What running experiments' limits still hold, and starts of this
    /// plan reserve: on top of `month`, whatever its quotas.
    holding: MonthUse,
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
                holding: MonthUse::default(),
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
                holding: MonthUse::default(),
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

    /// Counts `r` with `gpus` GPUs as held by the owner (and project),
    /// reserving `month` more of this month.
    pub fn hold(
        &mut self,
        owner: usize,
        project: Option<usize>,
        r: &Resources,
        gpus: u32,
        month: MonthUse,
    ) {
        let mut accounts = vec![&mut self.owners[owner]];
        if let Some(p) = project {
            accounts.push(&mut self.projects[p]);
        }
        for a in accounts {
            a.held.add(r, gpus);
            a.holding.add(month);
        }
    }

    /// Why one more experiment asking `r` may not start: its owner's
    /// quota, else its project's.
    pub fn over(
        &self,
        owner: usize,
        project: Option<usize>,
        r: &Resources,
        month: MonthUse,
    ) -> Option<super::WaitReason> {
        let a = &self.owners[owner];
        if let Some(quota) = &a.quota
            && let Some(exceeded) = over_quota(quota, &a.held, a.month_so_far().as_ref(), r, month)
        {
            return Some(super::WaitReason::OverQuota(exceeded));
        }
        let p = &self.projects[project?];
        over_quota(
            p.quota.as_ref()?,
            &p.held,
            p.month_so_far().as_ref(),
            r,
            month,
        )
        .map(super::WaitReason::OverProjectQuota)
    }
}

impl Account {
    /// The month as read, with what is held on top of it.
    fn month_so_far(&self) -> Option<MonthUse> {
        self.month.map(|mut m| {
            m.add(self.holding);
            m
        })
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

/// Why one more experiment asking `r` (and reserving `next` of the month)
/// may not start under `quota`, given what is `held` and was reserved this
/// `month`, if so.
pub fn over_quota(
    quota: &Quota,
    held: &Held,
    month: Option<&MonthUse>,
    r: &Resources,
    next: MonthUse,
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
    let month = month.copied().unwrap_or_default();
    if let Some(max) = quota.max_gpu_hours_month
        && r.gpus > 0
        && month.gpu_hours + next.gpu_hours > max + 1e-9
    {
        return Some(QuotaExceeded::GpuHours {
            max,
            used: month.gpu_hours,
        });
    }
    if let Some(max) = quota.max_cost_month
        && (month.cost + next.cost > max + 1e-9 || month.cost >= max)
    {
        return Some(QuotaExceeded::Cost {
            max,
            used: month.cost,
        });
    }
    None
}

/// The monthly limit already reached, if any.
fn month_spent(quota: &Quota, month: MonthUse) -> Option<QuotaExceeded> {
    if let Some(max) = quota.max_gpu_hours_month
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
    month_spent(quota, month.copied().unwrap_or_default())
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
        assert!(over_quota(&quota, &held, None, &cpus(1.0), MonthUse::default()).is_some());
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
    fn a_monthly_limit_counts_what_a_start_would_reserve_up_front() {
        let quota = Quota {
            max_gpu_hours_month: Some(100.0),
            ..Quota::default()
        };
        let rates = crate::model::CostRates::default();
        let spent = MonthUse {
            gpu_hours: 90.0,
            cost: 0.0,
        };
        let gpu_for = |hours: i64| {
            let r = res(1.0, 1);
            (r, MonthUse::reserving(&r, hours * 3600, &rates))
        };
        let (r, next) = gpu_for(10);
        assert_eq!(next.gpu_hours, 10.0);
        assert_eq!(
            over_quota(&quota, &Held::default(), Some(&spent), &r, next),
            None
        );
        let (r, next) = gpu_for(11);
        assert!(matches!(
            over_quota(&quota, &Held::default(), Some(&spent), &r, next),
            Some(QuotaExceeded::GpuHours { .. })
        ));
        let cpu = cpus(1.0);
        let next = MonthUse::reserving(&cpu, 1000 * 3600, &rates);
        assert_eq!(
            over_quota(&quota, &Held::default(), Some(&spent), &cpu, next),
            None,
            "GPU-hours concern runs with GPUs only"
        );
        let cost = Quota {
            max_cost_month: Some(50.0),
            ..Quota::default()
        };
        let paid = MonthUse {
            gpu_hours: 0.0,
            cost: 50.0,
        };
        let nothing = MonthUse::default();
        assert!(over_quota(&cost, &Held::default(), Some(&paid), &cpu, nothing).is_some());
    }
}
