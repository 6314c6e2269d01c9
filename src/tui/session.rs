//! One interactive session: a task that turns input and shared snapshots into frames.
//!
//! Back-pressure: a frame is rendered only after the previous one was handed
//! to the client (the sink waits for the SSH window), so a stalled client
//! costs at most one frame of memory; ticks missed meanwhile are skipped and
//! the next frame shows the latest state.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::app::{Flow, Tab, ViewState};
use super::backend::ScreenWriter;
use super::data::{PageCharts, Snapshot};
use super::fetch::{
    compare_charts, costs_query, history_pane_text, page_charts, pane_key, queue_filter,
};
use super::history::{HistoryPane, Shown};
use super::input::{InputParser, key_press};
use super::queue::QueuePane;
use super::queue::logpane::{INITIAL_TAIL, LogFollower};
use super::requests::carry_out;
use super::view::render;
use crate::lab::{Lab, ListFrom, Principal};
use crate::output::ReadFrom;

/// Enter the alternate screen, hide the cursor, have pastes marked as
/// such (bracketed paste), clear.
const ENTER: &[u8] = b"\x1b[?1049h\x1b[?25l\x1b[?2004h\x1b[2J\x1b[H";
/// Reset attributes, end bracketed paste, show the cursor, leave the
/// alternate screen.
const LEAVE: &[u8] = b"\x1b[0m\x1b[?2004l\x1b[?25h\x1b[?1049l";

/// What a session receives from its channel.
#[derive(Debug)]
pub struct TuiInput {
    /// Bytes typed by the user; `None` when the channel closes.
    pub keys: mpsc::Receiver<bytes::Bytes>,
    /// The client's window size, updated on window-change.
    pub size: watch::Receiver<ratatui::layout::Size>,
}

/// Settings of one session.
#[derive(Debug, Clone, Copy)]
pub struct TuiSettings {
    /// Redraw period when nothing else happens.
    pub refresh: Duration,
    /// Leave after this long without a key press (`None`: never).
    pub idle_timeout: Option<Duration>,
}

/// Where frames go; `write` waits until the client can take more.
pub trait FrameSink: Send {
    /// Sends bytes; an error means the client is gone.
    fn write(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), ()>> + Send;
}

/// Runs the interface until the user quits or the channel closes; returns the exit status.
pub async fn run_tui_session<S: FrameSink>(
    lab: Lab,
    principal: Principal,
    mut input: TuiInput,
    mut sink: S,
    settings: TuiSettings,
) -> u32 {
    let mut view = ViewState::new(principal.role);
    // The announcement greets the session; notifications after now follow.
    if let Ok(Some(a)) = lab.announcement(&principal) {
        view.announcement = Some(format!(
            "{} ({}, {})",
            a.text,
            a.by,
            crate::units::minute_time(a.at)
        ));
    }
    let mut notified = lab.notification_seq();
    // Notifications not shown yet, and when the last one was.
    let mut to_show: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut shown_at: Option<std::time::Instant> = None;
    let mut parser = InputParser::default();
    let initial_size = *input.size.borrow_and_update();
    let mut screen = ScreenWriter::new(initial_size);
    let idle_limit = settings.idle_timeout.unwrap_or(Duration::MAX);
    let mut last_key = tokio::time::Instant::now();
    let usage = lab.usage_updates();
    let mut lab_names = lab.lab_names().unwrap_or_default();
    let mut frames: u64 = 0;
    let mut follower: Option<LogFollower> = None;
    // History's open pane's text, with what it was read for and when.
    let mut pane_text: Option<(PaneKey, std::time::Instant, String, Option<PageCharts>)> = None;
    // History's projects or dependencies, with which and when they were read.
    let mut listing: Option<ListingRead> = None;
    // The activity feed, with when it was read.
    let mut feed: Option<(String, std::time::Instant, Vec<crate::lab::FeedItem>)> = None;
    // History's page, with what it was read for and when.
    let mut history: Option<(HistoryKey, std::time::Instant, crate::lab::HistoryPage)> = None;
    let mut comments_listed: Vec<crate::model::Comment> = Vec::new();
    let mut audit: Option<(String, std::time::Instant, Vec<crate::model::AuditEvent>)> = None;
    // What the quota editor's preview was computed for, and when.
    type Typed = (
        crate::model::QuotaScope,
        Result<crate::model::Quota, String>,
    );
    type Previewed = Result<crate::lab::QuotaChangePreview, String>;
    let mut preview: Option<(Typed, std::time::Instant, Previewed)> = None;
    // The Admin tab's costs, with what they were summed by and when.
    let mut costs: Option<(
        crate::lab::CostGrouping,
        std::time::Instant,
        Option<crate::lab::CostReport>,
    )> = None;
    // What the user's experiments cost this month, and when it was read.
    let mut month_cost: Option<(std::time::Instant, Option<String>)> = None;
    let mut month_cost_reading: Option<tokio::task::JoinHandle<Option<String>>> = None;
    #[allow(clippy::type_complexity)]
    let mut costs_reading: Option<(
        crate::lab::CostGrouping,
        tokio::task::JoinHandle<crate::lab::LabResult<crate::lab::CostReport>>,
    )> = None;
    let mut tick = tokio::time::interval(settings.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    if sink.write(ENTER.to_vec()).await.is_err() {
        return 0;
    }
    loop {
        frames += 1;
        if frames % 10 == 0 {
            lab_names = lab.lab_names().unwrap_or(lab_names);
        }
        {
            // A removed key or account ends the session, even one opened
            // before; a changed role changes the tabs and keys offered (the
            // service decides every action with the current role anyway).
            match lab.whoami(&principal) {
                Ok(now) => view.set_role(now.role),
                // A passing failure (the database reopening) ends nothing.
                Err(e) if !e.is_refusal() => view.notice = Some(e.to_string()),
                Err(e) => {
                    let mut farewell = LEAVE.to_vec();
                    farewell.extend_from_slice(format!("labbench: {e}\r\n").as_bytes());
                    let _ = sink.write(farewell).await;
                    return crate::exit::PERMISSION_DENIED;
                }
            }
        }
        // The read rule is asked at every frame: a role change or a
        // project made private closes an open log.
        if let Some(QueuePane::Log(log)) = &view.queue.pane
            && let Err(e) = lab.check_output_readable(&principal, log.id)
        {
            view.notice = Some(e.to_string());
            view.queue.pane = None;
        }
        if let Some(QueuePane::Log(log)) = &view.queue.pane {
            let key = (log.id, log.stream);
            if follower.as_ref().map(|f| f.key) != Some(key) {
                let from = ReadFrom::Tail(INITIAL_TAIL);
                follower = match lab.open_output(&principal, log.id, log.stream, from, false) {
                    Ok(reader) => Some(LogFollower::new(log.id, reader)),
                    Err(e) => {
                        view.notice = Some(e.to_string());
                        None
                    }
                };
            }
        } else {
            follower = None;
        }
        let mut snapshot = Snapshot {
            user: principal.user.clone(),
            role: Some(view.role),
            usage: usage.borrow().clone(),
            lab_names: lab_names.clone(),
            running: lab.running_by_unix_user(),
            idle: lab.idle_by_unix_user(),
            history_comments: comments_listed.clone(),
            month_cost: month_cost.as_ref().and_then(|(_, c)| c.clone()),
            log: follower.as_mut().map(LogFollower::poll).unwrap_or_default(),
            connected: lab.sessions().users(),
            sessions: lab.sessions().count(),
            clock: chrono::Local::now().format("%H:%M:%S").to_string(),
            // The rest is read below for the tab shown.
            ..Snapshot::default()
        };
        if view.tab == Tab::Queue {
            // A screenful is read, from where the selection is: the queue
            // may hold thousands.
            let page = usize::from(screen.size().height.saturating_sub(6)).max(1);
            view.queue.page = page;
            let filter = queue_filter(&view.queue, &principal.user);
            let total = lab
                .list_page(&principal, &filter, ListFrom::Offset(0), 0)
                .ok()
                .and_then(|p| p.total)
                .unwrap_or(0);
            view.queue.offset = view.queue.window_start(page, total);
            let window = lab
                .list_page(
                    &principal,
                    &filter,
                    ListFrom::Offset(view.queue.offset),
                    page,
                )
                .unwrap_or_default();
            snapshot.queue = window.views;
            snapshot.queue_offset = view.queue.offset;
            snapshot.queue_total = window.total.unwrap_or(total);
            let ids: Vec<u64> = snapshot.queue.iter().map(|v| v.experiment.id).collect();
            view.queue
                .follow_selection(&ids, snapshot.queue_offset, snapshot.queue_total);
            // The selection moved off the screen read: read again around it.
            let start = view.queue.window_start(page, snapshot.queue_total);
            if start != view.queue.offset {
                view.queue.offset = start;
                let again = lab
                    .list_page(&principal, &filter, ListFrom::Offset(start), page)
                    .unwrap_or_default();
                snapshot.queue = again.views;
                snapshot.queue_offset = start;
            }
        }
        let shown = view.history.shown;
        if view.tab == Tab::History && matches!(shown, Shown::Projects | Shown::Dependencies) {
            let asked = (shown, view.history.deps_query.clone());
            let stale = listing
                .as_ref()
                .is_none_or(|(was, at, _)| *was != asked || at.elapsed() >= HISTORY_REFRESH);
            if stale {
                let (reader, who, query) = (lab.clone(), principal.clone(), asked.1.clone());
                let read = tokio::task::spawn_blocking(move || {
                    if shown == Shown::Projects {
                        return reader.projects(&who, None).map(Listing::Projects);
                    }
                    let query = crate::lab::parse_deps_query(&query, crate::lab::now())
                        .map_err(crate::lab::LabError::Invalid)?;
                    reader.deps(&who, &query).map(|answer| match answer {
                        crate::lab::DepsAnswer::Packages(p) => Listing::Packages(p),
                        crate::lab::DepsAnswer::Uses(u) => Listing::Uses(u),
                    })
                })
                .await
                .unwrap_or_else(|e| Err(crate::lab::LabError::Unavailable(e.to_string())));
                match read {
                    Ok(read) => listing = Some((asked, std::time::Instant::now(), read)),
                    Err(e) => view.notice = Some(e.to_string()),
                }
            }
            match listing.as_ref().map(|(_, _, read)| read) {
                Some(Listing::Projects(p)) => snapshot.projects = p.clone(),
                Some(Listing::Packages(p)) => snapshot.packages = p.clone(),
                Some(Listing::Uses(u)) => snapshot.deps_uses = u.clone(),
                None => {}
            }
            view.history_rows = snapshot
                .projects
                .len()
                .max(snapshot.packages.len())
                .max(snapshot.deps_uses.len());
        } else {
            listing = None;
        }
        if view.tab == Tab::History && shown == Shown::Feed {
            let project = view.history.feed_project.clone();
            let stale = feed
                .as_ref()
                .is_none_or(|(was, at, _)| *was != project || at.elapsed() >= HISTORY_REFRESH);
            if stale {
                let (reader, who, asked) = (lab.clone(), principal.clone(), project.clone());
                let read = tokio::task::spawn_blocking(move || {
                    let project = Some(asked.as_str()).filter(|p| !p.is_empty());
                    reader.feed(
                        &who,
                        crate::lab::now() - FEED_DAYS * 86_400,
                        project,
                        FEED_ITEMS,
                    )
                })
                .await
                .unwrap_or_else(|e| Err(crate::lab::LabError::Unavailable(e.to_string())));
                match read {
                    Ok(items) => feed = Some((project, std::time::Instant::now(), items)),
                    Err(e) => view.notice = Some(e.to_string()),
                }
            }
            snapshot.feed = feed
                .as_ref()
                .map(|(_, _, items)| items.clone())
                .unwrap_or_default();
            view.history_rows = snapshot.feed.len();
        } else {
            feed = None;
        }
        if view.tab == Tab::History && shown == Shown::Experiments {
            view.history.page_rows = usize::from(screen.size().height.saturating_sub(6)).max(1);
            let sort = view.history.service_sort();
            let key = (
                view.history.filter.clone(),
                view.history.before(),
                sort.clone(),
                // Who may read what: a change reads the page again at once.
                (view.role, lab.visibility_generation()),
            );
            // A sorted page reads all that the filter matches: less often.
            let every = if sort.is_some() {
                HISTORY_SORTED_REFRESH
            } else {
                HISTORY_REFRESH
            };
            let stale = history
                .as_ref()
                .is_none_or(|(k, at, _)| *k != key || at.elapsed() >= every);
            if stale {
                // A filter no index narrows reads the whole history: on a
                // blocking thread, so that it holds up no other session.
                let (reader, who, query) = (lab.clone(), principal.clone(), key.clone());
                let read = tokio::task::spawn_blocking(move || match &query.2 {
                    None => reader.history(&who, &query.0, query.1, HISTORY_PAGE),
                    Some(sort) => reader.history_sorted(
                        &who,
                        &query.0,
                        sort,
                        query.1.unwrap_or(0) as usize,
                        HISTORY_PAGE,
                    ),
                })
                .await
                .unwrap_or_else(|e| Err(crate::lab::LabError::Unavailable(e.to_string())));
                match read {
                    Ok(page) => history = Some((key, std::time::Instant::now(), page)),
                    Err(e) => {
                        // Shown, and not asked again before the next refresh.
                        view.notice = Some(e.to_string());
                        history = Some((key, std::time::Instant::now(), Default::default()));
                    }
                }
            }
            if let Some((_, _, page)) = &history {
                snapshot.history = page.rows.clone();
                // Sorted, the next page starts after so many rows.
                snapshot.history_next = page.next.or(page.next_offset.map(|offset| offset as u64));
                snapshot.history_capped = page.sort_partial;
            }
            view.history_rows = snapshot.history.len();
            view.history.selected = view
                .history
                .selected
                .min(snapshot.history.len().saturating_sub(1));
        }
        // Read in the background, picked up at a later tick: the screen
        // never waits for it.
        if month_cost_reading.as_ref().is_some_and(|r| r.is_finished())
            && let Some(reading) = month_cost_reading.take()
        {
            let read = reading.await.ok().flatten();
            month_cost = Some((std::time::Instant::now(), read));
            snapshot.month_cost = month_cost.as_ref().and_then(|(_, c)| c.clone());
        }
        if month_cost_reading.is_none()
            && month_cost
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= MONTH_COST_REFRESH)
        {
            let (reader, who) = (lab.clone(), principal.clone());
            month_cost_reading = Some(tokio::task::spawn_blocking(move || {
                let (spent, currency) = reader.my_month_cost(&who).ok()??;
                Some(format!("{spent:.2} {currency} reserved"))
            }));
            // Asked again in 5 minutes, whatever the answer.
            month_cost
                .get_or_insert((std::time::Instant::now(), None))
                .0 = std::time::Instant::now();
        }
        // Several at once are shown in turn, each for a while.
        for n in lab.notifications_after(&principal, notified) {
            notified = n.seq;
            to_show.push_back(format!("{}: {}", n.by, n.text));
        }
        if !to_show.is_empty()
            && (view.notice.is_none()
                || shown_at.is_none_or(|at: std::time::Instant| at.elapsed() >= NOTICE_SHOWN))
        {
            view.notice = to_show.pop_front();
            shown_at = Some(std::time::Instant::now());
        }
        if view.tab == Tab::Admin && view.admin.view == crate::tui::admin::AdminView::Costs {
            let by = view.admin.costs_by;
            // Read in the background (it reads months of history); the
            // screen says "reading" meanwhile and never waits for it.
            if costs_reading.as_ref().is_some_and(|(_, r)| r.is_finished())
                && let Some((read_by, reading)) = costs_reading.take()
            {
                let read = reading
                    .await
                    .unwrap_or_else(|e| Err(crate::lab::LabError::Unavailable(e.to_string())));
                // A failure is shown, and not asked again before the next refresh.
                let report = read.map_err(|e| view.notice = Some(e.to_string())).ok();
                costs = Some((read_by, std::time::Instant::now(), report));
            }
            let stale = costs
                .as_ref()
                .is_none_or(|(b, at, _)| *b != by || at.elapsed() >= HISTORY_SORTED_REFRESH);
            if stale && costs_reading.is_none() {
                let (reader, who) = (lab.clone(), principal.clone());
                costs_reading = Some((
                    by,
                    tokio::task::spawn_blocking(move || {
                        reader.costs(&who, &costs_query(by, chrono::Local::now().date_naive()))
                    }),
                ));
            }
            snapshot.costs = costs
                .as_ref()
                .filter(|(b, _, _)| *b == by)
                .and_then(|(_, _, r)| r.clone());
        }
        if view.tab == Tab::Admin && view.admin.view == crate::tui::admin::AdminView::Users {
            // Read through the service (a few records), every frame.
            match lab.list_users(&principal) {
                Ok(users) => snapshot.users = users,
                Err(e) => view.notice = Some(e.to_string()),
            }
            view.admin_rows = snapshot.users.len();
            if let Some((name, selected)) = view.admin.users.keys_of.as_mut() {
                match lab.list_keys(&principal, Some(name)) {
                    Ok(keys) => snapshot.user_keys = keys,
                    Err(e) => view.notice = Some(e.to_string()),
                }
                *selected = (*selected).min(snapshot.user_keys.len().saturating_sub(1));
            }
            view.admin.keys_listed = snapshot.user_keys.len();
        }
        if view.tab == Tab::Admin && view.admin.view == crate::tui::admin::AdminView::Quotas {
            // A few records, read through the service every frame.
            match lab.all_quotas(&principal) {
                Ok(quotas) => snapshot.quotas = quotas,
                Err(e) => view.notice = Some(e.to_string()),
            }
            view.admin_rows = snapshot.quotas.len();
            // The preview of what is typed, computed again when it changes
            // (a few milliseconds: the scheduler run twice) or every 5 s.
            match &view.admin.editor {
                Some(editor) => {
                    let typed = (editor.scope.clone(), editor.quota());
                    let stale = preview
                        .as_ref()
                        .is_none_or(|(k, at, _)| *k != typed || at.elapsed() >= HISTORY_REFRESH);
                    if stale {
                        let shown = match &typed.1 {
                            Ok(quota) => lab
                                .quota_preview(&principal, &typed.0, *quota)
                                .map_err(|e| e.to_string()),
                            Err(why) => Err(why.clone()),
                        };
                        preview = Some((typed, std::time::Instant::now(), shown));
                    }
                    snapshot.quota_preview = preview.as_ref().map(|(_, _, shown)| shown.clone());
                }
                None => {
                    preview = None;
                    snapshot.quota_preview = None;
                }
            }
        }
        if view.tab == Tab::Admin && view.admin.view == crate::tui::admin::AdminView::HostLimits {
            match lab.host_limits(&principal) {
                Ok(limits) => snapshot.host_limits = limits,
                Err(e) => view.notice = Some(e.to_string()),
            }
            view.admin_rows = snapshot.host_limits.len();
        }
        if view.tab == Tab::Admin && view.admin.view == crate::tui::admin::AdminView::Idle {
            // Decided by the service with the current role, every frame.
            match lab.idle_report(&principal) {
                Ok(report) => snapshot.idle_report = (lab.idle_rule(), report),
                Err(e) => view.notice = Some(e.to_string()),
            }
            view.admin_rows = snapshot.idle_report.1.len();
        }
        if view.tab == Tab::Admin && view.admin.view == crate::tui::admin::AdminView::Audit {
            let stale = audit.as_ref().is_none_or(|(k, at, _)| {
                *k != view.admin.filter || at.elapsed() >= HISTORY_REFRESH
            });
            if stale {
                // Decided by the service with the current role.
                let now_ms = crate::output::journal::now_ms();
                let (reader, who, filter) =
                    (lab.clone(), principal.clone(), view.admin.filter.clone());
                // A filter that matches little reads the whole trail.
                let read = tokio::task::spawn_blocking(move || {
                    crate::lab::AuditQuery::parse(&filter, now_ms)
                        .map_err(crate::lab::LabError::Invalid)
                        .and_then(|query| reader.audit_log(&who, &query))
                })
                .await
                .unwrap_or_else(|e| Err(crate::lab::LabError::Unavailable(e.to_string())));
                let events = read.unwrap_or_else(|e| {
                    // Shown, and not asked again before the next refresh.
                    view.notice = Some(e.to_string());
                    Vec::new()
                });
                audit = Some((view.admin.filter.clone(), std::time::Instant::now(), events));
            }
            snapshot.audit = audit
                .as_ref()
                .map(|(_, _, e)| e.clone())
                .unwrap_or_default();
            view.admin_rows = snapshot.audit.len();
        } else {
            audit = None;
        }
        if view.tab == Tab::Admin {
            view.admin.page_rows = usize::from(screen.size().height.saturating_sub(6)).max(1);
            view.admin.selected = view.admin.selected.min(view.admin_rows.saturating_sub(1));
        }
        if let Some(request) = view.request.take() {
            carry_out(&lab, &principal, &mut view, &snapshot, request);
        }
        // The comments to choose from, read through the service as drawn.
        if let Some(HistoryPane::PickComment { id, selected, .. }) = view.history.pane.as_mut() {
            match lab.changeable_comments(&principal, *id) {
                Ok(list) => comments_listed = list,
                Err(e) => {
                    view.notice = Some(e.to_string());
                    comments_listed.clear();
                }
            }
            *selected = (*selected).min(comments_listed.len().saturating_sub(1));
        } else {
            comments_listed.clear();
        }
        snapshot.history_comments = comments_listed.clone();
        // Read again when another pane opens, the role changed, or after
        // a while; not at every key (a comparison reads 20 experiments).
        snapshot.history_pane_text = match &view.history.pane {
            None => {
                pane_text = None;
                None
            }
            Some(pane) => {
                let key = (
                    pane_key(pane),
                    view.role,
                    (
                        view.history.chart_metric,
                        view.history.chart_log,
                        view.history.chart_use,
                    ),
                );
                let fresh = pane_text
                    .as_ref()
                    .is_some_and(|(k, at, _, _)| *k == key && at.elapsed() < HISTORY_REFRESH);
                if !fresh {
                    let text = history_pane_text(&lab, &principal, pane);
                    let (nth, log) = (view.history.chart_metric, view.history.chart_log);
                    let charts = match pane {
                        HistoryPane::Page { id, .. } => {
                            let mut charts = page_charts(&lab, &principal, *id, nth, log);
                            charts.shown = view.history.chart_use;
                            Some(charts)
                        }
                        HistoryPane::Compare { ids, .. } => {
                            Some(compare_charts(&lab, &principal, ids, nth, log))
                        }
                        _ => None,
                    };
                    pane_text = Some((key, std::time::Instant::now(), text, charts));
                }
                snapshot.page_charts = pane_text.as_ref().and_then(|(_, _, _, c)| c.clone());
                pane_text.as_ref().map(|(_, _, text, _)| text.clone())
            }
        };
        snapshot.queue_pane_text = match &view.queue.pane {
            Some(QueuePane::Details(id)) => Some(match lab.experiment(&principal, *id) {
                Ok(e) => {
                    let private_project =
                        e.spec.project.as_deref().is_some_and(|project| {
                            lab.project_is_private(project).unwrap_or(false)
                        });
                    let mut text = crate::describe::experiment_details(&e, private_project);
                    if let Ok(d) = lab.discussion(&principal, *id) {
                        text.push_str(&crate::describe::discussion_lines(
                            &d,
                            Some(crate::describe::COMMENTS_SHOWN),
                        ));
                    }
                    text
                }
                Err(e) => e.to_string(),
            }),
            _ => None,
        };
        if let Some(QueuePane::Log(log)) = &mut view.queue.pane {
            // The pane is the screen minus tab bar, status line and borders.
            log.page = usize::from(screen.size().height.saturating_sub(6)).max(1);
            log.bounds = (snapshot.log.first, snapshot.log.end());
        }
        let rows = snapshot.usage.users.len();
        view.dashboard.selected = view.dashboard.selected.min(rows.saturating_sub(1));
        if let Some(drill) = &view.dashboard.drill {
            snapshot.drill_chart = lab.usage_chart(&principal, drill.uid, drill.window);
        }
        let Ok(frame) = screen.frame(|buffer| render(buffer, &view, &snapshot)) else {
            tracing::warn!(user = %principal.user, "drawing failed; ending session");
            return 1;
        };
        if !frame.is_empty() && sink.write(frame).await.is_err() {
            return 0;
        }
        // Shared data (host figures, sessions) is picked up on the next tick:
        // one frame per second per idle session, whatever changes upstream.
        tokio::select! {
            _ = tick.tick() => {}
            changed = input.size.changed() => {
                if changed.is_ok() {
                    let size = *input.size.borrow_and_update();
                    screen.set_size(size);
                }
            }
            event = input.keys.recv() => match event {
                None => return 0,
                Some(bytes) => {
                    last_key = tokio::time::Instant::now();
                    for event in parser.feed(&bytes) {
                        if view.handle_event(&event) == Flow::Quit {
                            let _ = sink.write(LEAVE.to_vec()).await;
                            return 0;
                        }
                    }
                }
            },
            // Nothing came for a moment after an incomplete sequence: a lone
            // ESC is the Escape key, anything longer is dropped. (Timed from
            // the last input, not restarted by redraws.)
            _ = tokio::time::sleep_until(last_key + parser.patience().unwrap_or_default()),
                if parser.patience().is_some() => {
                for key in parser.flush().iter().filter_map(key_press) {
                    view.handle_key(key);
                }
            }
        }
        if last_key.elapsed() >= idle_limit {
            let mut farewell = LEAVE.to_vec();
            farewell.extend_from_slice(
                format!(
                    "labbench: disconnected after {} s without input\r\n",
                    idle_limit.as_secs()
                )
                .as_bytes(),
            );
            let _ = sink.write(farewell).await;
            return 0;
        }
    }
}

impl<T: FrameSink> FrameSink for &mut T {
    fn write(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), ()>> + Send {
        (**self).write(bytes)
    }
}

/// What a History pane's text was read for: the pane, the role, and the
/// page's chart (which metric, log scale).
type PaneKey = (
    (Vec<u64>, bool),
    crate::model::Role,
    (usize, bool, super::data::UseChart),
);

/// What History's page was read for: its filter, where it starts, its order.
type HistoryKey = (
    String,
    Option<u64>,
    Option<crate::lab::HistorySort>,
    (crate::model::Role, u64),
);

/// What History's projects or dependencies view read, for which view and
/// query, and when.
type ListingRead = ((Shown, String), std::time::Instant, Listing);

/// What History's projects or dependencies view shows.
enum Listing {
    /// Each project's figures.
    Projects(Vec<crate::lab::ProjectSummary>),
    /// Every package.
    Packages(Vec<crate::lab::PackageSummary>),
    /// The experiments a dependency query found.
    Uses(Vec<crate::lab::DepsUse>),
}

/// Days of activity the feed shows.
const FEED_DAYS: i64 = 7;
/// Most items of the feed shown.
const FEED_ITEMS: usize = 200;

/// Rows of a History page.
const HISTORY_PAGE: usize = 100;
/// How long a History page is shown before it is read again.
const HISTORY_REFRESH: Duration = Duration::from_secs(5);
/// How long a notification shows before the next one waiting.
const NOTICE_SHOWN: Duration = Duration::from_secs(5);
/// How often the status line's cost of the month is read again.
const MONTH_COST_REFRESH: Duration = Duration::from_secs(300);
/// How often a sorted History page is read again (it reads all that the
/// filter matches).
const HISTORY_SORTED_REFRESH: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_experiment_page_shows_each_part_as_the_service_allows_it() {
        use crate::lab::SubmitRequest;
        use crate::lab::testing::{lab_with_admin, principal};
        use crate::model::{CommandLine, Role};
        let (_d, lab) = lab_with_admin();
        let mike = principal(&lab, "mike", Role::Member);
        let vera = principal(&lab, "vera", Role::Viewer);
        let id = lab
            .submit(
                &mike,
                SubmitRequest {
                    command: Some(CommandLine::Shell("echo secret-plan".into())),
                    workdir: Some("/tmp".into()),
                    private: true,
                    ..SubmitRequest::default()
                },
            )
            .expect("submit");
        let page = HistoryPane::Page { id, scroll: 0 };
        let own = history_pane_text(&lab, &mike, &page);
        assert!(own.contains("secret-plan"), "{own}");
        assert!(
            own.contains("PROVENANCE") && own.contains("no provenance captured"),
            "{own}"
        );
        let other = history_pane_text(&lab, &vera, &page);
        assert!(!other.contains("secret-plan"), "{other}");
        assert!(other.contains("is private"), "{other}");
        let compare = HistoryPane::Compare {
            ids: vec![id, id],
            scroll: 0,
        };
        let refused = history_pane_text(&lab, &vera, &compare);
        assert!(refused.starts_with("permission denied"), "{refused}");
    }
}
