//! Usage series with peaks: 1-second points for the last hour, 1-minute and
//! 1-hour buckets beyond, downsampled with **max** (and sum, for means), so a
//! two-second spike still shows in a seven-day peak.
//!
//! Time is passed in explicitly (seconds since the epoch), never read here,
//! so tests drive it without sleeping.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use crate::model::{Bucket, ClosedBucket, METRICS, Metric, Usage};

/// A look-back window for peaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Window {
    /// The last minute.
    #[serde(rename = "1m")]
    Minute,
    /// The last hour.
    #[serde(rename = "1h")]
    Hour,
    /// The last 24 hours.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days.
    #[serde(rename = "7d")]
    Week,
}

impl Window {
    /// All windows, shortest first.
    pub const ALL: [Window; 4] = [Window::Minute, Window::Hour, Window::Day, Window::Week];

    /// Length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Window::Minute => 60,
            Window::Hour => 3600,
            Window::Day => 86_400,
            Window::Week => 7 * 86_400,
        }
    }

    /// The short name (`1m`, `1h`, `24h`, `7d`).
    pub fn label(self) -> &'static str {
        match self {
            Window::Minute => "1m",
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }
}

impl std::str::FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Window::ALL
            .into_iter()
            .find(|w| w.label() == s)
            .ok_or_else(|| format!("unknown window {s:?}: use 1m, 1h, 24h or 7d"))
    }
}

/// Max, mean and 95th percentile of each metric over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Largest value (exact at every resolution).
    pub max: Usage,
    /// Mean value.
    pub mean: Usage,
    /// 95th percentile: exact over 1-second points for 1m and 1h; over
    /// 1-minute means for 24h and 7d.
    pub p95: Usage,
    /// Samples behind the figures.
    pub samples: u32,
}

/// One subject's (a user's, the host's) history.
#[derive(Debug, Clone, Default)]
pub struct Series {
    seconds: VecDeque<(i64, Usage)>,
    minutes: VecDeque<(i64, Bucket)>,
    current_minute: Option<(i64, Bucket)>,
    current_hour: Option<(i64, Bucket)>,
    /// 1h/24h/7d figures computed at the start of a minute (see [`Series::live_stats`]).
    long_windows: Option<(i64, [WindowStats; 3])>,
}

/// Seconds of 1-second points kept in memory.
pub const KEEP_SECONDS: i64 = 3600;
/// Seconds of 1-minute buckets kept in memory (the longest window).
pub const KEEP_MINUTES: i64 = 7 * 86_400;

fn floor_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

impl Series {
    /// Restores minute buckets read back from the store (oldest first; a
    /// bucket of a minute already restored is merged into it). The last may
    /// be the minute still in progress, saved by [`Series::open_buckets`]:
    /// samples of that minute go on into it.
    pub fn restore_minutes(&mut self, minutes: impl IntoIterator<Item = (i64, Bucket)>) {
        for (start, bucket) in minutes {
            match self.minutes.back_mut() {
                Some((last, kept)) if *last == start => kept.merge(&bucket),
                Some((last, _)) if *last > start => {}
                _ => self.minutes.push_back((start, bucket)),
            }
        }
    }

    /// Restores the hour bucket in progress, saved by [`Series::open_buckets`]:
    /// samples of that hour go on into it.
    pub fn restore_open_hour(&mut self, start: i64, bucket: Bucket) {
        match &mut self.current_hour {
            Some((hour, kept)) if *hour == start => kept.merge(&bucket),
            Some(_) => {}
            None => self.current_hour = Some((start, bucket)),
        }
    }

    /// The buckets still open (the current minute and hour), to save so
    /// that a restart keeps their peaks; saved again, they replace what
    /// was saved before.
    pub fn open_buckets(&self) -> Vec<ClosedBucket> {
        let minute = self.current_minute.map(|(start, bucket)| ClosedBucket {
            resolution: 60,
            start,
            bucket,
        });
        let hour = self.current_hour.map(|(start, bucket)| ClosedBucket {
            resolution: 3600,
            start,
            bucket,
        });
        minute.into_iter().chain(hour).collect()
    }

    /// Records a sample at `t`; returns buckets that closed and should be stored.
    pub fn record(&mut self, t: i64, usage: Usage) -> Vec<ClosedBucket> {
        let mut closed = Vec::new();
        if self.seconds.back().is_some_and(|(last, _)| *last >= t) {
            return closed; // time must move forward; a repeated second is ignored
        }
        self.seconds.push_back((t, usage));
        while self
            .seconds
            .front()
            .is_some_and(|(s, _)| *s <= t - KEEP_SECONDS)
        {
            self.seconds.pop_front();
        }
        let minute = floor_to(t, 60);
        if let Some((start, bucket)) = self.current_minute
            && start != minute
        {
            self.minutes.push_back((start, bucket));
            closed.push(ClosedBucket {
                resolution: 60,
                start,
                bucket,
            });
            self.current_minute = None;
        }
        if self.current_minute.is_none() {
            // A minute saved while open (before a restart) goes on.
            let resumed = match self.minutes.back() {
                Some((start, _)) if *start == minute => self.minutes.pop_back(),
                _ => None,
            };
            self.current_minute = Some(resumed.unwrap_or((minute, Bucket::default())));
        }
        if let Some((_, bucket)) = &mut self.current_minute {
            bucket.add(usage);
        }
        while self
            .minutes
            .front()
            .is_some_and(|(s, _)| *s <= t - KEEP_MINUTES)
        {
            self.minutes.pop_front();
        }
        let hour = floor_to(t, 3600);
        if let Some((start, bucket)) = self.current_hour
            && start != hour
        {
            closed.push(ClosedBucket {
                resolution: 3600,
                start,
                bucket,
            });
            self.current_hour = None;
        }
        self.current_hour
            .get_or_insert((hour, Bucket::default()))
            .1
            .add(usage);
        closed
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<Usage> {
        self.seconds.back().map(|(_, u)| *u)
    }

    /// The last `n` 1-second points of one metric (for sparklines), oldest first.
    pub fn recent(&self, metric: usize, n: usize) -> Vec<f64> {
        let skip = self.seconds.len().saturating_sub(n);
        self.seconds
            .iter()
            .skip(skip)
            .map(|(_, u)| u.to_array()[metric])
            .collect()
    }

    /// Points of the window, one per resolution step, for charts: `(t, max values)`.
    pub fn chart(&self, now: i64, window: Window) -> Vec<(i64, Usage)> {
        let since = now - window.seconds();
        if window.seconds() <= KEEP_SECONDS {
            // Before the first 1-second point (a restart lost the earlier
            // ones) the minute buckets, restored from the store, stand in.
            let first = self.seconds.front().map_or(i64::MAX, |(t, _)| *t);
            let minutes = self
                .minutes
                .iter()
                .chain(self.current_minute.iter())
                .filter(|(t, _)| *t > since && *t < first)
                .map(|(t, b)| (*t, Usage::from_array(b.max)));
            let seconds = self.seconds.iter().filter(|(t, _)| *t > since).copied();
            return minutes.chain(seconds).collect();
        }
        self.minutes
            .iter()
            .chain(self.current_minute.iter())
            .filter(|(t, _)| *t + 60 > since)
            .map(|(t, b)| (*t, Usage::from_array(b.max)))
            .collect()
    }

    /// Figures for every window in [`Window::ALL`] order, cheap enough to call
    /// every second: 1m is exact; 1h, 24h and 7d are computed once a minute,
    /// and their max also takes in the current minute at once, so a new peak
    /// shows immediately while means and p95 follow within a minute.
    pub fn live_stats(&mut self, now: i64) -> [WindowStats; 4] {
        let minute = floor_to(now, 60);
        let cached = match self.long_windows {
            Some((at, stats)) if at == minute => stats,
            _ => {
                let stats = [Window::Hour, Window::Day, Window::Week].map(|w| self.stats(now, w));
                self.long_windows = Some((minute, stats));
                stats
            }
        };
        let current = self.current_minute.map(|(_, b)| b).unwrap_or_default();
        let with_current = |mut stats: WindowStats| {
            if current.count > 0 {
                let max = stats.max.to_array();
                let merged: Vec<f64> = max.iter().zip(current.max).map(|(a, b)| a.max(b)).collect();
                stats.max = Usage::from_array([merged[0], merged[1], merged[2], merged[3]]);
            }
            stats
        };
        [
            self.stats(now, Window::Minute),
            with_current(cached[0]),
            with_current(cached[1]),
            with_current(cached[2]),
        ]
    }

    /// Max, mean and p95 over the window ending at `now`.
    pub fn stats(&self, now: i64, window: Window) -> WindowStats {
        let since = now - window.seconds();
        if window.seconds() <= KEEP_SECONDS {
            let points: Vec<Usage> = self
                .seconds
                .iter()
                .filter(|(t, _)| *t > since && *t <= now)
                .map(|(_, u)| *u)
                .collect();
            let mut bucket = Bucket::default();
            points.iter().for_each(|u| bucket.add(*u));
            let mut max = bucket.max;
            if window == Window::Hour {
                // After a restart the 1-second points are gone; the minute buckets
                // (restored from the store) still hold the hour's peaks.
                for (_, b) in self
                    .minutes
                    .iter()
                    .filter(|(t, _)| *t + 60 > since && *t <= now)
                {
                    for (m, v) in max.iter_mut().zip(b.max) {
                        *m = m.max(v);
                    }
                }
            }
            return WindowStats {
                max: Usage::from_array(max),
                mean: Usage::from_array(bucket.mean()),
                p95: percentile(points.iter().map(|u| u.to_array()), 0.95),
                samples: bucket.count,
            };
        }
        let buckets: Vec<&Bucket> = self
            .minutes
            .iter()
            .chain(self.current_minute.iter())
            .filter(|(t, _)| *t + 60 > since && *t <= now)
            .map(|(_, b)| b)
            .collect();
        let mut total = Bucket::default();
        buckets.iter().for_each(|b| total.merge(b));
        WindowStats {
            max: Usage::from_array(total.max),
            mean: Usage::from_array(total.mean()),
            p95: percentile(buckets.iter().map(|b| b.mean()), 0.95),
            samples: total.count,
        }
    }
}

/// The q-quantile of each metric (nearest rank).
fn percentile(values: impl Iterator<Item = [f64; 4]>, q: f64) -> Usage {
    let rows: Vec<[f64; 4]> = values.collect();
    if rows.is_empty() {
        return Usage::default();
    }
    let mut out = [0.0; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let mut column: Vec<f64> = rows.iter().map(|r| r[i]).collect();
        column.sort_by(f64::total_cmp);
        let rank = ((q * column.len() as f64).ceil() as usize).clamp(1, column.len());
        *slot = column[rank - 1];
    }
    Usage::from_array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

    fn mem(bytes: f64) -> Usage {
        Usage {
            memory_bytes: bytes,
            ..Usage::default()
        }
    }

    #[test]
    fn an_open_minute_saved_before_a_restart_keeps_its_peak() {
        let spike = Usage {
            memory_bytes: 400.0,
            ..Usage::default()
        };
        let calm = Usage {
            memory_bytes: 10.0,
            ..Usage::default()
        };
        let minute = 60 * 1000;
        let mut before = Series::default();
        for t in 0..6 {
            before.record(minute + t, spike);
        }
        let saved = before.open_buckets();
        assert_eq!(saved.len(), 2, "{saved:?}");
        // The restarted daemon restores what was saved, then samples on in
        // the same minute and hour.
        let mut after = Series::default();
        after.restore_minutes(
            saved
                .iter()
                .filter(|c| c.resolution == 60)
                .map(|c| (c.start, c.bucket)),
        );
        for c in saved.iter().filter(|c| c.resolution == 3600) {
            after.restore_open_hour(c.start, c.bucket);
        }
        for t in 20..30 {
            after.record(minute + t, calm);
        }
        assert_eq!(
            after.stats(minute + 30, Window::Day).max.memory_bytes,
            400.0
        );
        // What is stored at the minute's close still holds the spike.
        let closed = after.record(minute + 3600, calm);
        for c in closed {
            assert_eq!(c.bucket.max[1], 400.0, "{c:?}");
            assert_eq!(c.bucket.count, 16, "{c:?}");
        }
    }

    #[test]
    fn a_two_second_spike_survives_every_level() {
        let mut series = Series::default();
        let start = 1_700_000_000 - 1_700_000_000 % 3600;
        let mut closed = Vec::new();
        // Two days of 1 GiB, with a 2-second burst to 20 GiB after 5 hours.
        for t in start..start + 2 * 86_400 {
            let spike = (start + 5 * 3600..start + 5 * 3600 + 2).contains(&t);
            closed.extend(series.record(t, mem(if spike { 20.0 * GIB } else { GIB })));
        }
        let now = start + 2 * 86_400 - 1;
        assert_eq!(series.stats(now, Window::Week).max.memory_bytes, 20.0 * GIB);
        assert_eq!(series.stats(now, Window::Day).max.memory_bytes, GIB);
        // The stored minute and hour buckets both carry the spike as their max.
        let minute = closed
            .iter()
            .find(|c| c.resolution == 60 && c.start == start + 5 * 3600)
            .expect("minute bucket");
        assert_eq!(minute.bucket.max[1], 20.0 * GIB);
        let hour = closed
            .iter()
            .find(|c| c.resolution == 3600 && c.start == start + 5 * 3600)
            .expect("hour bucket");
        assert_eq!(hour.bucket.max[1], 20.0 * GIB);
        // The mean barely moves: averages hide the spike, peaks do not.
        assert!(series.stats(now, Window::Week).mean.memory_bytes < 1.01 * GIB);
    }

    #[test]
    fn windows_roll_over() {
        let mut series = Series::default();
        let t0 = 1_000_000 * 60;
        series.record(t0, mem(5.0));
        for t in t0 + 1..t0 + 120 {
            series.record(t, mem(1.0));
        }
        let now = t0 + 119;
        assert_eq!(series.stats(now, Window::Minute).max.memory_bytes, 1.0);
        assert_eq!(series.stats(now, Window::Hour).max.memory_bytes, 5.0);
        assert_eq!(series.stats(now, Window::Minute).samples, 60);
        // After an hour the 1-second history forgets it, minutes remember.
        for t in t0 + 120..t0 + 3700 {
            series.record(t, mem(1.0));
        }
        let now = t0 + 3699;
        assert_eq!(series.stats(now, Window::Hour).max.memory_bytes, 1.0);
        assert_eq!(series.stats(now, Window::Day).max.memory_bytes, 5.0);
    }

    #[test]
    fn p95_and_mean_over_seconds() {
        let mut series = Series::default();
        for (i, t) in (6000..6100).enumerate() {
            series.record(
                t,
                Usage {
                    cpu_cores: i as f64,
                    ..Usage::default()
                },
            );
        }
        let s = series.stats(6099, Window::Hour);
        assert_eq!(s.max.cpu_cores, 99.0);
        assert_eq!(s.p95.cpu_cores, 94.0);
        assert!((s.mean.cpu_cores - 49.5).abs() < 1e-9);
    }

    #[test]
    fn restored_minutes_count_in_long_windows() {
        let mut series = Series::default();
        let mut b = Bucket::default();
        b.add(mem(7.0));
        series.restore_minutes([(60 * 1000, b)]);
        assert_eq!(
            series
                .stats(60 * 1000 + 3600 * 5, Window::Day)
                .max
                .memory_bytes,
            7.0
        );
        assert_eq!(series.stats(60 * 1000 + 86_400 * 2, Window::Day).samples, 0);
    }

    #[test]
    fn the_hour_chart_keeps_the_minutes_from_before_a_restart() {
        let t0 = 60 * 50_000;
        let mut before = Series::default();
        for t in t0..t0 + 90 {
            before.record(t, mem(if t == t0 + 30 { 9.0 } else { 1.0 }));
        }
        // What the store holds: the minutes, closed and open.
        let mut after = Series::default();
        let open = before
            .open_buckets()
            .into_iter()
            .filter(|c| c.resolution == 60);
        after.restore_minutes(
            before
                .minutes
                .iter()
                .copied()
                .chain(open.map(|c| (c.start, c.bucket))),
        );
        for t in t0 + 100..t0 + 110 {
            after.record(t, mem(2.0));
        }
        let chart = after.chart(t0 + 110, Window::Hour);
        let peak = chart
            .iter()
            .map(|(_, u)| u.memory_bytes)
            .fold(0.0, f64::max);
        assert_eq!(peak, 9.0, "{chart:?}");
        assert!(chart.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
        assert_eq!(chart.last().map(|(t, _)| *t), Some(t0 + 109));
    }

    #[test]
    fn live_stats_show_a_new_peak_at_once() {
        let mut series = Series::default();
        let t0 = 60 * 50_000;
        for t in t0..t0 + 30 {
            series.record(t, mem(1.0));
        }
        assert_eq!(series.live_stats(t0 + 29)[3].max.memory_bytes, 1.0);
        series.record(t0 + 30, mem(9.0));
        let live = series.live_stats(t0 + 30);
        for stats in live {
            assert_eq!(stats.max.memory_bytes, 9.0);
        }
        // Exact and live agree once the minute has turned.
        for t in t0 + 31..t0 + 125 {
            series.record(t, mem(1.0));
        }
        let live = series.live_stats(t0 + 124);
        for (w, stats) in Window::ALL.iter().zip(live) {
            assert_eq!(stats.max, series.stats(t0 + 124, *w).max, "{w:?}");
        }
    }

    #[test]
    fn time_going_backwards_is_ignored() {
        let mut series = Series::default();
        series.record(100, mem(1.0));
        series.record(99, mem(50.0));
        assert_eq!(series.stats(100, Window::Minute).max.memory_bytes, 1.0);
    }
}
