//! Quotas: per user, per project (all its experiments together, whoever
//! runs them) and a default for every user who sets no such limit. Admins
//! set and remove them (audited); the running scheduler applies them at
//! once. What a change would do is previewed before it is saved, with each
//! concerned user's 7-day peak and p95 beside the limits, so that limits
//! are set from peaks, not averages. A project is only a label: a member
//! who names another project leaves that project's quota, never their own
//! or the default.

use std::collections::BTreeSet;

use serde::Serialize;

use super::submit::MAX_LABEL;
use super::{Change, Lab, LabError, LabResult, Principal, require_admin};
use crate::model::{MAX_DURATION_SECS, Quota, QuotaScope, Resources, Role, State, Usage};
use crate::monitor::Window;
use crate::sched::preview::{QuotaPreview, preview};
use crate::sched::{Held, Quotas};
use crate::store::IndexedBy;

/// A quota as `quota show` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaShown {
    /// `default`, `user NAME` or `project NAME`.
    pub scope: String,
    /// The limits set for the scope.
    pub set: Quota,
    /// The limits that apply: for a user, theirs over the default's.
    pub effective: Quota,
}

/// What saving a quota would do, with the figures to judge it by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaChangePreview {
    /// `default`, `user NAME` or `project NAME`.
    pub scope: String,
    /// The quota as it would be set.
    pub quota: Quota,
    /// Who is over it now, what would start and what would be held.
    #[serde(flatten)]
    pub effect: QuotaPreview,
    /// Each concerned user's holdings, measured peaks and limits (for a
    /// project, its experiments together first, then each user's, all of
    /// whose experiments are counted).
    pub users: Vec<UserFigures>,
}

/// One user beside a quota being set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserFigures {
    /// Lab user.
    pub user: String,
    /// Experiments running now.
    pub running: u32,
    /// CPU cores reserved now.
    pub cpus: f64,
    /// Memory reserved now, bytes.
    pub memory_bytes: u64,
    /// GPUs held now.
    pub gpus: u32,
    /// Measured over 7 days (their Unix account, queue or not): the peak.
    pub peak_7d: Usage,
    /// Measured over 7 days: the 95th percentile.
    pub p95_7d: Usage,
    /// The limits that would apply to them.
    pub limit: Quota,
}

impl Lab {
    /// Sets the quota of `scope` (admins; audited); the scheduler applies
    /// it at once.
    pub fn set_quota(&self, p: &Principal, scope: &QuotaScope, quota: Quota) -> LabResult<()> {
        // Not between a removal's check and its write (an orphan quota
        // would pass to a later account of the same name).
        let _guard = self.identity_lock();
        let p = &self.current(p)?;
        require_admin(p, "set quotas")?;
        self.check_scope(scope)?;
        check_limits(&quota)?;
        let old = self.store.quota(scope)?;
        self.store.put_quota(scope, &quota)?;
        let (before, after) = super::audit::changed_fields(&old, &quota);
        self.audit(
            p,
            Change::new(
                "quota.set",
                scope.to_string(),
                format!("set quota of {scope}"),
            )
            .changing(Some(before), Some(after)),
        )?;
        self.queue_changed();
        Ok(())
    }

    /// Removes the quota of `scope` (admins; audited): a user falls back to
    /// the default, a project and the default limit nothing.
    pub fn remove_quota(&self, p: &Principal, scope: &QuotaScope) -> LabResult<()> {
        let p = &self.current(p)?;
        require_admin(p, "remove quotas")?;
        self.check_scope(scope)?;
        let old = self.store.quota(scope)?;
        self.store.remove_quota(scope)?;
        let (before, _) = super::audit::changed_fields(&old, &Quota::default());
        self.audit(
            &p.clone(),
            Change::new(
                "quota.rm",
                scope.to_string(),
                format!("removed quota of {scope}"),
            )
            .changing(Some(before), None),
        )?;
        self.queue_changed();
        Ok(())
    }

    /// The quota of `scope`: one's own, the default and the projects' for
    /// everyone; any user's for admins.
    pub fn quota_of(&self, p: &Principal, scope: &QuotaScope) -> LabResult<QuotaShown> {
        let p = &self.current(p)?;
        if let QuotaScope::User(user) = scope {
            super::require_self_or_admin(p, user, "see this quota")?;
            self.existing_user_record(user)?;
        }
        let set = self.store.quota(scope)?;
        let effective = match scope {
            QuotaScope::User(_) => set.or(&self.store.quota(&QuotaScope::Default)?),
            _ => set,
        };
        Ok(QuotaShown {
            scope: scope.to_string(),
            set,
            effective,
        })
    }

    /// Every quota set, the default first (admins).
    pub fn all_quotas(&self, p: &Principal) -> LabResult<Vec<(QuotaScope, Quota)>> {
        let p = &self.current(p)?;
        require_admin(p, "list quotas")?;
        let mut all = self.store.quotas()?;
        if !all.iter().any(|(s, _)| *s == QuotaScope::Default) {
            all.push((QuotaScope::Default, Quota::default()));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// What setting `scope`'s quota to `quota` would do now (admins):
    /// nothing is saved.
    pub fn quota_preview(
        &self,
        p: &Principal,
        scope: &QuotaScope,
        quota: Quota,
    ) -> LabResult<QuotaChangePreview> {
        let p = &self.current(p)?;
        require_admin(p, "preview quotas")?;
        self.check_scope(scope)?;
        check_limits(&quota)?;
        let mut quotas = self.scheduler_quotas()?;
        // The month's figures of those the change concerns, also where no
        // monthly limit is set yet.
        if quota.has_monthly() {
            self.add_month_use(&mut quotas, scope)?;
        }
        let (effect, _) = self.on_queue(&quotas, |input| preview(input, scope, quota))?;
        quotas.set(scope.clone(), quota);
        let users = self.user_figures(p, scope, &quotas)?;
        Ok(QuotaChangePreview {
            scope: scope.to_string(),
            quota,
            effect,
            users,
        })
    }

    /// The quotas as the scheduler applies them, with what was reserved
    /// this month where a monthly limit applies.
    pub(super) fn scheduler_quotas(&self) -> LabResult<Quotas> {
        let mut quotas = Quotas::from_scoped(self.store.quotas()?);
        quotas.rates = self.costs.rates.clone();
        let monthly = quotas.default.has_monthly()
            || quotas.users.values().any(Quota::has_monthly)
            || quotas.projects.values().any(Quota::has_monthly);
        if !monthly {
            return Ok(quotas);
        }
        let (owners, projects) = self.store.with_active(|active| {
            let mut owners = BTreeSet::new();
            let mut projects = BTreeSet::new();
            for e in active.values().filter(|e| e.state == State::Queued) {
                owners.insert(e.owner.clone());
                projects.extend(e.spec.project.clone());
            }
            (owners, projects)
        });
        for owner in owners {
            if quotas.for_user(&owner).has_monthly() {
                let (used, _) = self.month_reserved(IndexedBy::Owner, &owner)?;
                quotas.user_month.insert(owner, used);
            }
        }
        for project in projects {
            if quotas
                .projects
                .get(&project)
                .is_some_and(Quota::has_monthly)
            {
                let (used, _) = self.month_reserved(IndexedBy::Project, &project)?;
                quotas.project_month.insert(project, used);
            }
        }
        Ok(quotas)
    }

    /// Reads this month's figures of everyone `scope` concerns into `quotas`.
    fn add_month_use(&self, quotas: &mut Quotas, scope: &QuotaScope) -> LabResult<()> {
        match scope {
            QuotaScope::Project(project) => {
                let (used, _) = self.month_reserved(IndexedBy::Project, project)?;
                quotas.project_month.insert(project.clone(), used);
            }
            QuotaScope::User(user) => {
                let (used, _) = self.month_reserved(IndexedBy::Owner, user)?;
                quotas.user_month.insert(user.clone(), used);
            }
            QuotaScope::Default => {
                for user in self.store.users()? {
                    let (used, _) = self.month_reserved(IndexedBy::Owner, &user.name)?;
                    quotas.user_month.insert(user.name, used);
                }
            }
        }
        Ok(())
    }

    /// Each user `scope` concerns (one user; everyone; those with
    /// experiments of the project running or queued): what they hold, their
    /// measured 7-day peak and p95, and the limits that would apply.
    fn user_figures(
        &self,
        p: &Principal,
        scope: &QuotaScope,
        quotas: &Quotas,
    ) -> LabResult<Vec<UserFigures>> {
        let (held, in_project, project_held) = self.store.with_active(|active| {
            let mut held: std::collections::BTreeMap<String, Held> = Default::default();
            let mut in_project = BTreeSet::new();
            let mut project_held = Held::default();
            for e in active.values() {
                let of_project = matches!(scope, QuotaScope::Project(project)
                    if e.spec.project.as_ref() == Some(project));
                if of_project {
                    in_project.insert(e.owner.clone());
                }
                if let State::Running { gpus, .. } | State::Starting { gpus } = &e.state {
                    let gpus = gpus.len() as u32;
                    held.entry(e.owner.clone())
                        .or_default()
                        .add(&e.spec.resources, gpus);
                    if of_project {
                        project_held.add(&e.spec.resources, gpus);
                    }
                }
            }
            (held, in_project, project_held)
        });
        let snapshot = self.usage_snapshot(p);
        let mut figures = Vec::new();
        // A project's quota counts all its experiments: their sum first.
        if let QuotaScope::Project(project) = scope {
            figures.push(UserFigures {
                user: format!("(all of {project})"),
                running: project_held.running,
                cpus: project_held.cpus,
                memory_bytes: project_held.memory,
                gpus: project_held.gpus,
                peak_7d: Usage::default(),
                p95_7d: Usage::default(),
                limit: quotas.projects.get(project).copied().unwrap_or_default(),
            });
        }
        for user in self.store.users()? {
            let concerned = match scope {
                QuotaScope::Default => user.role != Role::Viewer,
                QuotaScope::User(u) => *u == user.name,
                QuotaScope::Project(_) => in_project.contains(&user.name),
            };
            if !concerned {
                continue;
            }
            let account = user.unix_user.as_deref().unwrap_or(&user.name);
            let week = snapshot
                .users
                .iter()
                .find(|u| u.unix_user == account)
                .map(|u| *u.window(Window::Week))
                .unwrap_or_default();
            let h = held.get(&user.name).copied().unwrap_or_default();
            figures.push(UserFigures {
                limit: match scope {
                    QuotaScope::Project(project) => {
                        quotas.projects.get(project).copied().unwrap_or_default()
                    }
                    _ => quotas.for_user(&user.name),
                },
                user: user.name,
                running: h.running,
                cpus: h.cpus,
                memory_bytes: h.memory,
                gpus: h.gpus,
                peak_7d: week.max,
                p95_7d: week.p95,
            });
        }
        Ok(figures)
    }

    /// Why a request of `owner`'s in `project` exceeds a limit outright
    /// (whatever is in use), if it does.
    pub(super) fn request_over_quota(
        &self,
        owner: &str,
        project: Option<&str>,
        r: &Resources,
    ) -> LabResult<Option<String>> {
        let own = self
            .store
            .quota(&QuotaScope::User(owner.to_string()))?
            .or(&self.store.quota(&QuotaScope::Default)?);
        if let Some(why) =
            super::submit::larger_than_quota(&own, r).or_else(|| self.larger_than_month(&own, r))
        {
            return Ok(Some(format!("request larger than your quota: {why}")));
        }
        if let Some(project) = project {
            let quota = self
                .store
                .quota(&QuotaScope::Project(project.to_string()))?;
            if let Some(why) = super::submit::larger_than_quota(&quota, r)
                .or_else(|| self.larger_than_month(&quota, r))
            {
                return Ok(Some(format!(
                    "request larger than the quota of project {project}: {why}"
                )));
            }
        }
        Ok(None)
    }

    /// Why one run of `r` reserves more than a whole month of `quota`
    /// allows (its GPUs or its price for its whole time limit), if so: it
    /// could never start.
    fn larger_than_month(&self, quota: &Quota, r: &Resources) -> Option<String> {
        let run = crate::sched::MonthUse::reserving(r, r.time_limit_secs as i64, &self.costs.rates);
        if let Some(max) = quota.max_gpu_hours_month
            && r.gpus > 0
            && run.gpu_hours > max
        {
            return Some(format!(
                "{:.1} GPU-hours for one run (GPUs × time limit), max {max} a month",
                run.gpu_hours
            ));
        }
        if let Some(max) = quota.max_cost_month
            && run.cost > max
        {
            return Some(format!(
                "{:.2} {} for one run (its request × time limit), max {max} a month",
                run.cost,
                self.currency()
            ));
        }
        None
    }

    /// The most experiments `user` may have queued (their quota, the
    /// default's, else the queue's setting), and the most `project` may.
    pub(super) fn queued_limits(
        &self,
        user: &str,
        project: Option<&str>,
    ) -> LabResult<(u32, Option<u32>)> {
        let own = self
            .store
            .quota(&QuotaScope::User(user.to_string()))?
            .or(&self.store.quota(&QuotaScope::Default)?);
        let project_max = match project {
            Some(project) => {
                self.store
                    .quota(&QuotaScope::Project(project.to_string()))?
                    .max_queued
            }
            None => None,
        };
        Ok((
            own.max_queued.unwrap_or(self.queue.max_queued_per_user),
            project_max,
        ))
    }

    /// A user scope names a user who exists; a project scope a valid name.
    fn check_scope(&self, scope: &QuotaScope) -> LabResult<()> {
        match scope {
            QuotaScope::Default => Ok(()),
            QuotaScope::User(user) => self.existing_user_record(user).map(|_| ()),
            QuotaScope::Project(project) => check_project_name(project),
        }
    }
}

/// A project name as `--project` takes it.
pub(super) fn check_project_name(project: &str) -> LabResult<()> {
    if project.is_empty()
        || project.chars().count() > MAX_LABEL
        || project.chars().any(char::is_control)
    {
        return Err(LabError::Invalid(format!(
            "invalid project {project:?}: 1–{MAX_LABEL} printable characters"
        )));
    }
    Ok(())
}

/// Limits that can be met: a wall time within the longest allowed, monthly
/// amounts finite and not negative.
fn check_limits(quota: &Quota) -> LabResult<()> {
    if quota.max_time_secs.is_some_and(|t| t > MAX_DURATION_SECS) {
        return Err(LabError::Invalid(
            "--max-time: at most 365d (the longest wall-time limit)".into(),
        ));
    }
    let bad = |v: Option<f64>| v.is_some_and(|v| !v.is_finite() || v < 0.0);
    if bad(quota.max_cpus) || bad(quota.max_gpu_hours_month) || bad(quota.max_cost_month) {
        return Err(LabError::Invalid(
            "limits are numbers of 0 or more (--max-cpus, --max-gpu-hours, --max-cost)".into(),
        ));
    }
    Ok(())
}
