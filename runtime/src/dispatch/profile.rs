//! The performance model: measured execution times per (kernel identity,
//! device, size bucket), robust statistics over them, and a curve fitted
//! across buckets to predict sizes never seen.
//!
//! Robustness is the point. The first call of every kernel on every device
//! in a process is not recorded (pipeline compilation; see `Dispatcher`);
//! estimates use the median of the
//! samples left after rejecting those beyond 5 median absolute deviations,
//! so a single spike moves nothing; a pair whose times drift far from the
//! prediction for several calls in a row starts measuring afresh.

use std::cell::OnceCell;
use std::collections::{BTreeMap, VecDeque};

use crate::hash::FxMap;

/// Samples kept per entry (the newest).
pub(crate) const KEEP: usize = 32;
/// The shortest time a measured call can take: the resolution of the clock
/// that measures it. Anything shorter (a subnormal, say) is not a
/// measurement, and would make its device look infinitely fast.
pub(crate) const MIN_SECS: f64 = 1e-9;
/// The longest time kept: a day. No call pel places runs that long, and one
/// that did would say nothing about the next.
pub(crate) const MAX_SECS: f64 = 86_400.0;
/// The largest problem size a call can have: 2^56 (64 PiB of one-byte
/// elements, more than any machine holds).
pub(crate) const MAX_SIZE: u64 = 1 << 56;
/// The most calls an entry can have recorded: one per microsecond for
/// thirty years.
pub(crate) const MAX_CALLS: u64 = 1_000_000_000_000_000;
/// A time this many times off the prediction counts as drift...
const DRIFT_FACTOR: f64 = 3.0;
/// ...and this many drifting calls in a row re-open calibration...
const DRIFT_CALLS: u32 = 3;
/// ...once their own times add up to this many seconds: a device that has
/// changed stays changed, while a burst of interference (llvmpipe's
/// threads busy on the cores a CPU call runs on) passes within a few
/// milliseconds. A 10 ms call drifts in 3 calls, a slowed 400 µs one in 25.
const DRIFT_LASTS_S: f64 = 10e-3;
/// A time within this many seconds of the prediction never counts as
/// drift, however large the factor: a sub-microsecond call that takes three
/// times as long once its caches are cold changes no decision, since no
/// device finishes a call much sooner than this after it is asked to.
const DRIFT_FLOOR_S: f64 = 10e-6;
/// Buckets per doubling of the size.
const BUCKETS_PER_OCTAVE: f64 = 2.0;

/// [`MIN_SECS`] to [`MAX_SECS`], for messages.
pub(crate) const SECS_RANGE: &str = "1 ns to 1 day";

/// Whether `secs` is a time a call can be measured to take.
pub(crate) fn physical_secs(secs: f64) -> bool {
    (MIN_SECS..=MAX_SECS).contains(&secs)
}

/// Whether a time of `secs` where `predicted` was expected is far enough
/// off to count as drift.
pub(crate) fn drifts(secs: f64, predicted: f64) -> bool {
    predicted > 0.0
        && (secs - predicted).abs() > DRIFT_FLOOR_S
        && (secs > predicted * DRIFT_FACTOR || secs < predicted / DRIFT_FACTOR)
}

/// The bucket of a problem size: half-octaves, so sizes within √2 of each
/// other share one.
pub(crate) fn bucket(size: u64) -> i32 {
    // One call asks for its size's bucket several times: the last answer
    // is kept (a logarithm costs more than the rest of a lookup).
    thread_local! {
        static LAST: std::cell::Cell<(u64, i32)> = const { std::cell::Cell::new((0, i32::MIN)) };
    }
    LAST.with(|last| {
        let (s, b) = last.get();
        if s == size && b != i32::MIN {
            return b;
        }
        let b = ((size.max(1) as f64).log2() * BUCKETS_PER_OCTAVE).floor() as i32;
        last.set((size, b));
        b
    })
}

/// The smallest size of a bucket.
pub(crate) fn bucket_start(bucket: i32) -> u64 {
    2f64.powf(bucket as f64 / BUCKETS_PER_OCTAVE).ceil() as u64
}

/// Samples a full entry keeps before its summary is made afresh (it keeps
/// one call in eight: every 64 calls; 4 cost a tiny CPU call 0.02 µs more).
const REFRESH_EVERY: u32 = 8;

/// One measured call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) size: u64,
    pub(crate) secs: f64,
}

/// Robust summary of an entry's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Samples kept (outliers included).
    pub samples: usize,
    /// Samples rejected as outliers.
    pub outliers: usize,
    /// Mean of the retained samples, seconds.
    pub mean: f64,
    /// Median of the retained samples, seconds.
    pub median: f64,
    /// Median absolute deviation of the retained samples, seconds.
    pub spread: f64,
    /// Median problem size of the retained samples.
    pub size: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Entry {
    pub(crate) samples: VecDeque<Sample>,
    /// The summary of `samples`, computed once per change.
    summary: OnceCell<Option<Summary>>,
    /// Calls recorded over the entry's life.
    pub(crate) calls: u64,
    drift_streak: u32,
    /// The drifting streak's times added up, seconds.
    drift_secs: f64,
    /// Samples kept into a full entry since its summary was last made
    /// afresh.
    stale: u32,
    /// The samples drift last replaced, kept until the entry has its
    /// calibration again (see [`saved_samples`](Self::saved_samples)).
    before_drift: Option<VecDeque<Sample>>,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The median of unsorted values (reordered): what [`median`] gives of
/// them sorted.
fn select_median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (below, mid, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *mid;
    if n % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

impl Entry {
    /// Median and MAD over all samples, then again over those within 5 MADs.
    pub(crate) fn summary(&self) -> Option<Summary> {
        *self.summary.get_or_init(|| self.compute_summary())
    }

    fn compute_summary(&self) -> Option<Summary> {
        if self.samples.is_empty() {
            return None;
        }
        // Recomputed whenever a sample is kept, so on the path of small
        // calls: no allocation, one sort, and medians by selection. An
        // entry holds at most KEEP samples.
        let n = self.samples.len().min(KEEP);
        let samples = || self.samples.iter().take(KEEP);
        let mut t = [0f64; KEEP];
        for (x, s) in t.iter_mut().zip(samples()) {
            *x = s.secs;
        }
        let t = &mut t[..n];
        t.sort_unstable_by(f64::total_cmp);
        let m = median(t);
        let mut dev = [0f64; KEEP];
        for (d, x) in dev.iter_mut().zip(t.iter()) {
            *d = (x - m).abs();
        }
        // A floor of 5% of the median keeps near-identical samples from
        // making ordinary noise an "outlier".
        let mad = select_median(&mut dev[..n]).max(0.05 * m);
        let kept = |secs: f64| n < 3 || (secs - m).abs() <= 5.0 * mad;
        // `t` is sorted, so its kept values are too.
        let (mut kt, mut k) = ([0f64; KEEP], 0);
        for &x in t.iter().filter(|&&x| kept(x)) {
            kt[k] = x;
            k += 1;
        }
        let kt = &kt[..k];
        let (mut ks, mut j) = ([0u64; KEEP], 0);
        for s in samples().filter(|s| kept(s.secs)) {
            ks[j] = s.size;
            j += 1;
        }
        let km = median(kt);
        let mut kd = [0f64; KEEP];
        for (d, x) in kd.iter_mut().zip(kt) {
            *d = (x - km).abs();
        }
        let (_, size, _) = ks[..j].select_nth_unstable(j / 2);
        Some(Summary {
            samples: self.samples.len(),
            outliers: n - k,
            mean: kt.iter().sum::<f64>() / k as f64,
            median: km,
            spread: select_median(&mut kd[..k]),
            size: *size,
        })
    }

    /// The samples the model file keeps: the entry's own, unless drift
    /// re-opened its calibration and fewer than `min` samples have come
    /// since. Then the samples from before the drift are kept: a drift
    /// not yet confirmed by a calibration is this process's alone (on a
    /// machine whose GPU runs on the host's cores, the CPU's calls slow
    /// down for a while whenever the GPU is busy), and a model saved with
    /// too few samples would make the next process calibrate again. A
    /// drift that lasts is seen again there, three calls in.
    pub(crate) fn saved_samples(&self, min: usize) -> &VecDeque<Sample> {
        match &self.before_drift {
            Some(old) if self.samples.len() < min && !old.is_empty() => old,
            _ => &self.samples,
        }
    }

    /// Forgets the cached summary (after the samples were changed directly).
    pub(crate) fn refresh(&mut self) {
        self.summary = OnceCell::new();
    }

    /// Adds a sample; `predicted` is what the model expected before it.
    /// Returns whether calibration of this entry was re-opened by drift.
    pub(crate) fn record(&mut self, sample: Sample, predicted: Option<f64>) -> bool {
        self.calls += 1;
        let drifting = predicted.is_some_and(|p| drifts(sample.secs, p));
        if drifting {
            self.drift_streak += 1;
            self.drift_secs += sample.secs;
        } else {
            self.drift_streak = 0;
            self.drift_secs = 0.0;
        }
        // A full entry keeps one call in eight (and every drifting one): the
        // statistics stay fresh without being recomputed on every call.
        let full = self.samples.len() >= KEEP;
        if full && !drifting && !self.calls.is_multiple_of(8) {
            return false;
        }
        // A full entry's summary is made afresh every few samples it keeps
        // (at once for a drifting one): one sample moves a median of 32
        // little, and making it is most of what a small call's record costs.
        self.stale += 1;
        if !full || drifting || self.stale >= REFRESH_EVERY {
            self.summary = OnceCell::new();
            self.stale = 0;
        }
        self.samples.push_back(sample);
        while self.samples.len() > KEEP {
            self.samples.pop_front();
        }
        // (A nanosecond's slack for the sum's rounding.)
        if self.drift_streak >= DRIFT_CALLS && self.drift_secs >= DRIFT_LASTS_S - 1e-9 {
            // The old samples describe a device that is no more: keep the
            // new (every drifting sample was kept, so the streak's are the
            // last ones).
            let n = self.samples.len();
            let keep = (self.drift_streak as usize).min(n);
            let old = self.samples.drain(..n - keep).collect();
            self.before_drift = Some(old);
            self.summary = OnceCell::new();
            self.drift_streak = 0;
            self.drift_secs = 0.0;
            return true;
        }
        false
    }
}

/// A curve `t = a·sizeᵇ + c` fitted across buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Curve {
    /// Scale, seconds per size unit to the power b.
    pub a: f64,
    /// Exponent.
    pub b: f64,
    /// Fixed cost per call, seconds.
    pub c: f64,
}

impl Curve {
    /// Predicted seconds at `size`.
    pub fn at(&self, size: u64) -> f64 {
        self.a * (size.max(1) as f64).powf(self.b) + self.c
    }

    /// Weighted least squares in relative error over `points` (size,
    /// seconds): for each exponent b on a grid, a and c ≥ 0 in closed form.
    pub(crate) fn fit(points: &[(u64, f64)]) -> Option<Curve> {
        if points.len() < 2 {
            return None;
        }
        if points.len() == 2 {
            // Two points fix two parameters: a pure power law through both.
            let ((n1, t1), (n2, t2)) = (points[0], points[1]);
            let ratio = (n2.max(1) as f64 / n1.max(1) as f64).ln();
            let b = if ratio.abs() < 1e-9 {
                1.0
            } else {
                ((t2 / t1).ln() / ratio).clamp(0.0, 3.0)
            };
            let a = t1 / (n1.max(1) as f64).powf(b);
            return (a.is_finite() && b.is_finite()).then_some(Curve { a, b, c: 0.0 });
        }
        let mut best: Option<(f64, Curve)> = None;
        for step in 0..=30 {
            let b = 0.5 + step as f64 * 0.05;
            // Minimise Σ ((a·xᵢ + c − tᵢ) / tᵢ)² with xᵢ = sizeᵢᵇ.
            let (mut sxx, mut sx, mut s1, mut sxt, mut st) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &(n, t) in points {
                let w = 1.0 / (t * t);
                let x = (n.max(1) as f64).powf(b);
                sxx += w * x * x;
                sx += w * x;
                s1 += w;
                sxt += w * x * t;
                st += w * t;
            }
            let det = sxx * s1 - sx * sx;
            let (mut a, mut c) = if det.abs() > f64::EPSILON * sxx * s1 {
                ((sxt * s1 - sx * st) / det, (sxx * st - sx * sxt) / det)
            } else {
                (sxt / sxx, 0.0)
            };
            if c < 0.0 {
                c = 0.0;
                a = sxt / sxx;
            }
            if a < 0.0 {
                a = 0.0;
                c = st / s1;
            }
            let curve = Curve { a, b, c };
            let err: f64 = points
                .iter()
                .map(|&(n, t)| ((curve.at(n) - t) / t).powi(2))
                .sum();
            if err.is_finite() && best.is_none_or(|(e, _)| err < e) {
                best = Some((err, curve));
            }
        }
        best.map(|(_, c)| c)
    }
}

impl std::fmt::Display for Curve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3e}·n^{:.2} + {:.3e} s", self.a, self.b, self.c)
    }
}

/// Key of a profile entry: kernel identity, device index, size bucket.
pub(crate) type Key = (u64, usize, i32);

/// Everything measured of one kernel on one device.
#[derive(Debug, Clone, Default)]
struct Pair {
    buckets: BTreeMap<i32, Entry>,
    /// The fitted curve, computed once per change (`None`: not yet).
    curve: Option<Option<Curve>>,
}

/// Every entry, for every kernel and device.
#[derive(Debug, Clone, Default)]
pub(crate) struct Profile {
    pairs: FxMap<(u64, usize), Pair>,
}

impl Profile {
    /// Every entry with its key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &Entry)> {
        self.pairs
            .iter()
            .flat_map(|(&(k, d), p)| p.buckets.iter().map(move |(&b, e)| ((k, d, b), e)))
    }

    /// Samples near `bucket` (it and its neighbours), after warm-up.
    pub(crate) fn samples_near(&self, kernel: u64, device: usize, bucket: i32) -> usize {
        self.pairs.get(&(kernel, device)).map_or(0, |p| {
            p.buckets
                .range(bucket - 1..=bucket + 1)
                .map(|(_, e)| e.samples.len())
                .sum()
        })
    }

    /// The curve through the medians of the entries with at least `min`
    /// samples.
    pub(crate) fn curve(&mut self, kernel: u64, device: usize, min: usize) -> Option<Curve> {
        let pair = self.pairs.get_mut(&(kernel, device))?;
        *pair.curve.get_or_insert_with(|| {
            let points: Vec<(u64, f64)> = pair
                .buckets
                .values()
                .filter(|e| e.samples.len() >= min)
                .filter_map(Entry::summary)
                .map(|s| (s.size, s.median))
                .filter(|&(_, t)| t > 0.0)
                .collect();
            Curve::fit(&points)
        })
    }

    /// Expected seconds for `kernel` on `device` at `size`: the bucket's
    /// median (scaled to the size) where the bucket is calibrated, else the
    /// fitted curve, else the nearest measured bucket scaled linearly.
    pub(crate) fn estimate(
        &mut self,
        kernel: u64,
        device: usize,
        size: u64,
        min: usize,
    ) -> Option<f64> {
        let b = bucket(size);
        let scaled = |s: Summary| s.median * size.max(1) as f64 / s.size.max(1) as f64;
        let pair = self.pairs.get(&(kernel, device))?;
        if let Some(s) = pair
            .buckets
            .get(&b)
            .filter(|e| e.samples.len() >= min)
            .and_then(Entry::summary)
        {
            return Some(scaled(s));
        }
        if let Some(c) = self.curve(kernel, device, min) {
            return Some(c.at(size));
        }
        let pair = self.pairs.get(&(kernel, device))?;
        let below = pair
            .buckets
            .range(..=b)
            .rev()
            .find(|(_, e)| !e.samples.is_empty());
        let above = pair
            .buckets
            .range(b + 1..)
            .find(|(_, e)| !e.samples.is_empty());
        let nearest = match (below, above) {
            (Some(x), Some(y)) => Some(if b - x.0 <= y.0 - b { x } else { y }),
            (x, y) => x.or(y),
        };
        nearest.and_then(|(_, e)| e.summary()).map(scaled)
    }

    /// Records a measured call. Returns whether drift re-opened calibration.
    pub(crate) fn record(
        &mut self,
        kernel: u64,
        device: usize,
        sample: Sample,
        predicted: Option<f64>,
    ) -> bool {
        let pair = self.pairs.entry((kernel, device)).or_default();
        let entry = pair.buckets.entry(bucket(sample.size)).or_default();
        let before = entry.samples.len();
        let reopened = entry.record(sample, predicted);
        if reopened || entry.samples.len() != before || entry.samples.len() >= KEEP {
            pair.curve = None;
        }
        reopened
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.pairs.clear();
    }

    pub(crate) fn insert(&mut self, (kernel, device, b): Key, entry: Entry) {
        let pair = self.pairs.entry((kernel, device)).or_default();
        pair.curve = None;
        pair.buckets.insert(b, entry);
    }

    /// The entry at `key`.
    pub(crate) fn get(&self, (kernel, device, b): Key) -> Option<&Entry> {
        self.pairs.get(&(kernel, device))?.buckets.get(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(times: &[f64]) -> Entry {
        let mut e = Entry::default();
        for &t in times {
            e.record(
                Sample {
                    size: 1000,
                    secs: t,
                },
                None,
            );
        }
        e
    }

    #[test]
    fn a_spike_is_an_outlier_and_moves_nothing() {
        let e = entry(&[1.0, 1.02, 0.98, 1.01, 100.0, 0.99]);
        let s = e.summary().unwrap();
        assert_eq!(s.outliers, 1);
        assert!((s.median - 1.0).abs() < 0.02, "{s:?}");
        assert!((s.mean - 1.0).abs() < 0.02, "{s:?}");
    }

    #[test]
    fn the_model_file_keeps_a_drift_only_once_it_is_calibrated_again() {
        let mut e = entry(&[1.0; 6]);
        let slow = Sample {
            size: 1000,
            secs: 10.0,
        };
        let reopened: Vec<bool> = (0..3).map(|_| e.record(slow, Some(1.0))).collect();
        assert_eq!(reopened, [false, false, true]);
        assert_eq!(e.samples.len(), 3);
        // Three samples since the drift, five needed: the file keeps the
        // calibrated ones from before.
        let saved = e.saved_samples(5);
        assert_eq!(saved.len(), 6);
        assert!(saved.iter().all(|s| s.secs == 1.0), "{saved:?}");
        for _ in 0..2 {
            e.record(slow, None);
        }
        let saved = e.saved_samples(5);
        assert_eq!(saved.len(), 5);
        assert!(saved.iter().all(|s| s.secs == 10.0), "{saved:?}");
    }

    #[test]
    fn drift_reopens_calibration_after_three_calls_not_one() {
        let mut e = entry(&[1.0; 6]);
        assert!(!e.record(
            Sample {
                size: 1000,
                secs: 10.0
            },
            Some(1.0)
        ));
        assert!(
            !e.record(
                Sample {
                    size: 1000,
                    secs: 1.0
                },
                Some(1.0)
            ),
            "streak broken"
        );
        assert!(!e.record(
            Sample {
                size: 1000,
                secs: 10.0
            },
            Some(1.0)
        ));
        assert!(!e.record(
            Sample {
                size: 1000,
                secs: 10.0
            },
            Some(1.0)
        ));
        assert!(e.record(
            Sample {
                size: 1000,
                secs: 10.0
            },
            Some(1.0)
        ));
        assert_eq!(e.samples.len(), 3, "only the drifted samples remain");
        assert!((e.summary().unwrap().median - 10.0).abs() < 1e-9);
    }

    #[test]
    fn tiny_times_far_off_in_ratio_but_not_in_seconds_are_not_drift() {
        // 0.1 µs predicted, 0.5 µs seen again and again: a cold cache, not a
        // changed device.
        let mut e = entry(&[1e-7; 6]);
        for _ in 0..10 {
            let sample = Sample {
                size: 1000,
                secs: 5e-7,
            };
            assert!(!e.record(sample, Some(1e-7)));
        }
        // 0.1 µs predicted and 1 ms seen is drift, three calls in a row
        // that add up to 10 ms.
        let seen = |e: &mut Entry, secs: f64| {
            let sample = Sample { size: 1000, secs };
            e.record(sample, Some(1e-7))
        };
        assert!(!seen(&mut e, 5e-3) && !seen(&mut e, 1e-3) && seen(&mut e, 5e-3));
    }

    #[test]
    fn a_burst_of_slow_calls_is_drift_only_once_it_lasts() {
        // 20 µs predicted, 400 µs seen: three in a row are 1.2 ms, a burst
        // of interference, not a changed device.
        let mut e = entry(&[20e-6; 32]);
        let slow = Sample {
            size: 1000,
            secs: 400e-6,
        };
        assert!((0..3).all(|_| !e.record(slow, Some(20e-6))));
        // The burst ends: the streak starts over.
        e.record(
            Sample {
                size: 1000,
                secs: 20e-6,
            },
            Some(20e-6),
        );
        // It lasts: the 25th call in a row makes 10 ms, and the entry keeps
        // the 25 drifted samples (enough to need no calibration).
        let calls = (1..=40).find(|_| e.record(slow, Some(20e-6)));
        assert_eq!(calls, Some(25));
        assert_eq!(e.samples.len(), 25);
        assert!(e.samples.iter().all(|s| s.secs == 400e-6));
    }

    #[test]
    fn the_curve_recovers_a_power_law_with_a_fixed_cost() {
        let truth = Curve {
            a: 2e-9,
            b: 1.0,
            c: 50e-6,
        };
        let points: Vec<(u64, f64)> = [1_000u64, 10_000, 100_000, 1_000_000, 10_000_000]
            .iter()
            .map(|&n| (n, truth.at(n)))
            .collect();
        let fit = Curve::fit(&points).unwrap();
        for n in [500u64, 5_000, 50_000_000] {
            let rel = (fit.at(n) - truth.at(n)).abs() / truth.at(n);
            assert!(rel < 0.05, "n={n}: {fit} vs {truth}: {rel}");
        }
        let cubic = Curve {
            a: 1e-10,
            b: 1.5,
            c: 0.0,
        };
        let points: Vec<(u64, f64)> = [1u64 << 12, 1 << 15, 1 << 18, 1 << 21]
            .iter()
            .map(|&n| (n, cubic.at(n)))
            .collect();
        let fit = Curve::fit(&points).unwrap();
        assert!((fit.b - 1.5).abs() < 0.051, "{fit}");
    }

    #[test]
    fn estimates_use_the_bucket_then_the_curve() {
        let mut p = Profile::default();
        for &(n, t) in &[(1000u64, 1e-3), (100_000, 1e-1)] {
            for _ in 0..5 {
                p.record(7, 0, Sample { size: n, secs: t }, None);
            }
        }
        let at = p.estimate(7, 0, 1000, 5).unwrap();
        assert!((at - 1e-3).abs() < 1e-9);
        let between = p.estimate(7, 0, 10_000, 5).unwrap();
        assert!((between - 1e-2).abs() / 1e-2 < 0.1, "{between}");
        assert_eq!(
            p.estimate(8, 0, 1000, 5),
            None,
            "another kernel knows nothing"
        );
        assert_eq!(p.samples_near(7, 0, bucket(1000)), 5);
    }
}
