//! Task Bench's dependence patterns over a `width × steps` grid of tasks:
//! which tasks of step `t - 1` the task at point `p` of step `t` depends on.
//! Pure functions of the graph's shape, shared by real and simulated runs.

use std::fmt;
use std::str::FromStr;

use pel_runtime::Result;

use crate::{ensure, invalid};

/// One of Task Bench's dependence patterns (Slaughter et al., SC'20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// No dependencies at all.
    Trivial,
    /// Each point depends on itself at the step before.
    NoComm,
    /// Each point depends on itself and its two neighbours.
    Stencil1d,
    /// [`Stencil1d`](Self::Stencil1d) with the ends wrapping round.
    Stencil1dPeriodic,
    /// A diamond: the grid widens by one point a step, then narrows; each
    /// point depends on itself and its left neighbour.
    Dom,
    /// A binary tree widening from one point: each point depends on its
    /// parent, `p / 2`.
    Tree,
    /// A butterfly: point `p` depends on `p` and `p ± 2^s`, `s` cycling
    /// through `log2(width)` stages.
    Fft,
    /// Each point depends on every point.
    AllToAll,
    /// Each point depends on the `radix` points around it.
    Nearest,
    /// Each point depends on `radix` points spread evenly across the grid,
    /// shifted by the step (the shift repeats every `period` steps).
    Spread,
    /// [`Nearest`](Self::Nearest), each neighbour other than the point
    /// itself kept with probability `fraction`, drawn afresh (and
    /// deterministically) each step of the `period`.
    RandomNearest,
}

impl Pattern {
    /// Every pattern, in Task Bench's order.
    pub const ALL: [Pattern; 11] = [
        Pattern::Trivial,
        Pattern::NoComm,
        Pattern::Stencil1d,
        Pattern::Stencil1dPeriodic,
        Pattern::Dom,
        Pattern::Tree,
        Pattern::Fft,
        Pattern::AllToAll,
        Pattern::Nearest,
        Pattern::Spread,
        Pattern::RandomNearest,
    ];

    /// Task Bench's name for it (`stencil_1d`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Trivial => "trivial",
            Pattern::NoComm => "no_comm",
            Pattern::Stencil1d => "stencil_1d",
            Pattern::Stencil1dPeriodic => "stencil_1d_periodic",
            Pattern::Dom => "dom",
            Pattern::Tree => "tree",
            Pattern::Fft => "fft",
            Pattern::AllToAll => "all_to_all",
            Pattern::Nearest => "nearest",
            Pattern::Spread => "spread",
            Pattern::RandomNearest => "random_nearest",
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pattern {
    type Err = pel_runtime::Error;

    fn from_str(s: &str) -> Result<Pattern> {
        Pattern::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Pattern::ALL.iter().map(|p| p.name()).collect();
                invalid(
                    "taskbench",
                    "pattern",
                    format!("`{s}` is not one of {}", names.join(", ")),
                )
            })
    }
}

/// A Task Bench graph's shape: its pattern over `width` points and `steps`
/// steps, and the pattern's own settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Graph {
    /// The dependence pattern.
    pub pattern: Pattern,
    /// Points per step (the widest step, for [`Pattern::Dom`] and
    /// [`Pattern::Tree`]).
    pub width: usize,
    /// Steps.
    pub steps: usize,
    /// Neighbours of [`Pattern::Nearest`], [`Pattern::Spread`] and
    /// [`Pattern::RandomNearest`] (3 by default, as in Task Bench).
    pub radix: usize,
    /// Steps before [`Pattern::Spread`] and [`Pattern::RandomNearest`]
    /// repeat (3 by default).
    pub period: usize,
    /// The share of neighbours [`Pattern::RandomNearest`] keeps (0.25 by
    /// default).
    pub fraction: f64,
    /// Seeds [`Pattern::RandomNearest`]'s choices.
    pub seed: u64,
}

impl Graph {
    /// A graph of `pattern` over `width × steps`, with the default settings.
    pub fn new(pattern: Pattern, width: usize, steps: usize) -> Graph {
        Graph {
            pattern,
            width,
            steps,
            radix: 3,
            period: 3,
            fraction: 0.25,
            seed: 0,
        }
    }

    /// With `radix` neighbours.
    pub fn radix(mut self, radix: usize) -> Graph {
        self.radix = radix;
        self
    }

    /// Checks the shape: at least one point and one step, settings in
    /// range, and no task with more than `max_deps` dependencies.
    pub fn check(&self, max_deps: usize) -> Result<()> {
        let k = "taskbench";
        ensure(self.width > 0, k, "width", || "0 points; at least 1".into())?;
        ensure(self.steps > 0, k, "steps", || "0 steps; at least 1".into())?;
        ensure(self.period > 0, k, "period", || "0; at least 1".into())?;
        ensure((0.0..=1.0).contains(&self.fraction), k, "fraction", || {
            format!("{} is not within [0, 1]", self.fraction)
        })?;
        let most = self.max_deps();
        ensure(most <= max_deps, k, "width", || {
            format!(
                "{} over {} points gives a task {most} dependencies; at most {max_deps} here",
                self.pattern, self.width
            )
        })
    }

    /// The most dependencies any task has.
    pub fn max_deps(&self) -> usize {
        (1..self.steps)
            .flat_map(|t| self.points(t).map(move |p| (t, p)))
            .map(|(t, p)| self.deps(t, p).len())
            .max()
            .unwrap_or(0)
    }

    /// The points of step `t`: all of them, but for the diamond and the
    /// tree.
    pub fn points(&self, t: usize) -> std::ops::Range<usize> {
        let (w, steps) = (self.width, self.steps);
        match self.pattern {
            Pattern::Dom => {
                let offset = (t + w).saturating_sub(steps);
                let width = w.min(t + 1).min(steps.saturating_sub(t));
                offset..offset + width
            }
            Pattern::Tree => 0..w.min(1usize << t.min(62)),
            _ => 0..w,
        }
    }

    /// Tasks in the whole graph.
    pub fn tasks(&self) -> usize {
        (0..self.steps).map(|t| self.points(t).len()).sum()
    }

    /// The points of step `t - 1` that point `p` of step `t` depends on, in
    /// increasing order, without repeats (none at step 0).
    pub fn deps(&self, t: usize, p: usize) -> Vec<usize> {
        if t == 0 {
            return Vec::new();
        }
        let w = self.width;
        let lo = p.saturating_sub(1);
        let mut d: Vec<usize> = match self.pattern {
            Pattern::Trivial => Vec::new(),
            Pattern::NoComm => vec![p],
            Pattern::Stencil1d => (lo..=(p + 1).min(w - 1)).collect(),
            Pattern::Stencil1dPeriodic => vec![(p + w - 1) % w, p, (p + 1) % w],
            Pattern::Dom => (lo..=p).collect(),
            Pattern::Tree => vec![p / 2],
            Pattern::Fft => {
                let stages = usize::BITS - (w.max(2) - 1).leading_zeros();
                let stage = (t + stages as usize - 1) % stages as usize;
                let s = 1usize << stage;
                let mut v = vec![p];
                if p >= s {
                    v.push(p - s);
                }
                if p + s < w {
                    v.push(p + s);
                }
                v
            }
            Pattern::AllToAll => (0..w).collect(),
            Pattern::Nearest => self.near(p).collect(),
            Pattern::Spread => {
                let shift = t % self.period;
                (0..self.radix)
                    .map(|i| (p + i * w / self.radix + if i > 0 { shift } else { 0 }) % w)
                    .collect()
            }
            Pattern::RandomNearest => {
                let set = (t % self.period) as u64;
                self.near(p)
                    .filter(|&i| {
                        i == p
                            || unit(mix(&[
                                self.seed,
                                self.radix as u64,
                                set,
                                i as u64,
                                p as u64,
                            ])) < self.fraction
                    })
                    .collect()
            }
        };
        let before = self.points(t - 1);
        d.retain(|q| before.contains(q));
        d.sort_unstable();
        d.dedup();
        d
    }

    /// The `radix` points around `p` (fewer at the ends).
    fn near(&self, p: usize) -> std::ops::RangeInclusive<usize> {
        if self.radix == 0 {
            #[allow(clippy::reversed_empty_ranges)]
            return 1..=0;
        }
        let lo = p.saturating_sub(self.radix / 2);
        let hi = (p + (self.radix - 1) / 2).min(self.width - 1);
        lo..=hi
    }
}

/// A 64-bit mix of `words` (splitmix64 over each in turn): the same
/// choices on every machine and in every run.
fn mix(words: &[u64]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for &w in words {
        h = h.wrapping_add(w).wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h = z ^ (z >> 31);
    }
    h
}

/// `h` as a value in [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(pattern: Pattern, width: usize, steps: usize, t: usize, p: usize) -> Vec<usize> {
        Graph::new(pattern, width, steps).deps(t, p)
    }

    #[test]
    fn each_pattern_has_task_benchs_dependencies() {
        use Pattern::*;
        assert!(deps(Trivial, 4, 3, 1, 2).is_empty());
        assert_eq!(deps(NoComm, 4, 3, 1, 2), [2]);
        assert_eq!(deps(Stencil1d, 4, 3, 1, 0), [0, 1]);
        assert_eq!(deps(Stencil1d, 4, 3, 1, 2), [1, 2, 3]);
        assert_eq!(deps(Stencil1d, 4, 3, 1, 3), [2, 3]);
        assert_eq!(deps(Stencil1dPeriodic, 4, 3, 1, 0), [0, 1, 3]);
        assert_eq!(deps(Stencil1dPeriodic, 4, 3, 1, 3), [0, 2, 3]);
        assert_eq!(deps(AllToAll, 3, 2, 1, 1), [0, 1, 2]);
        assert_eq!(deps(Nearest, 8, 2, 1, 4), [3, 4, 5]);
        assert_eq!(Graph::new(Nearest, 8, 2).radix(4).deps(1, 4), [2, 3, 4, 5]);
        assert_eq!(deps(Tree, 8, 4, 3, 5), [2]);
        // FFT over 8 points: stages 1, 2, 4 in turn.
        assert_eq!(deps(Fft, 8, 4, 1, 3), [2, 3, 4]);
        assert_eq!(deps(Fft, 8, 4, 2, 3), [1, 3, 5]);
        assert_eq!(deps(Fft, 8, 4, 3, 3), [3, 7]);
        // Spread over 9 points, radix 3: a third of the way round, shifted
        // by the step within the period.
        assert_eq!(deps(Spread, 9, 4, 3, 0), [0, 3, 6]);
        assert_eq!(deps(Spread, 9, 4, 1, 0), [0, 4, 7]);
        assert_eq!(deps(Trivial, 4, 3, 0, 2), Vec::<usize>::new());
    }

    #[test]
    fn the_diamond_and_the_tree_grow_and_shrink() {
        let dom = Graph::new(Pattern::Dom, 3, 5);
        let widths: Vec<_> = (0..5).map(|t| dom.points(t)).collect();
        assert_eq!(widths, [0..1, 0..2, 0..3, 1..3, 2..3]);
        assert_eq!(dom.deps(1, 1), [0]);
        assert_eq!(dom.deps(3, 1), [0, 1]);
        assert_eq!(dom.deps(4, 2), [1, 2]);
        assert_eq!(dom.tasks(), 9);
        let tree = Graph::new(Pattern::Tree, 5, 4);
        let widths: Vec<_> = (0..4).map(|t| tree.points(t).len()).collect();
        assert_eq!(widths, [1, 2, 4, 5]);
        assert_eq!(tree.tasks(), 12);
    }

    #[test]
    fn random_nearest_keeps_the_point_and_is_the_same_every_time() {
        let g = Graph::new(Pattern::RandomNearest, 16, 8).radix(5);
        let mut kept = 0;
        for t in 1..8 {
            for p in 0..16 {
                let d = g.deps(t, p);
                assert!(d.contains(&p));
                assert_eq!(d, g.deps(t, p));
                assert!(d.iter().all(|&q| q.abs_diff(p) <= 2));
                kept += d.len() - 1;
            }
        }
        // About a quarter of the 4 neighbours of each of 7 × 16 tasks (406
        // neighbours, fewer at the ends): 101 expected.
        assert!((60..150).contains(&kept), "{kept}");
        let again = Graph { seed: 1, ..g };
        assert!((1..8).any(|t| (0..16).any(|p| again.deps(t, p) != g.deps(t, p))));
    }

    #[test]
    fn bad_shapes_are_typed_errors_naming_the_setting() {
        let e = Graph::new(Pattern::Stencil1d, 0, 3).check(7).unwrap_err();
        assert!(e.to_string().contains("width"), "{e}");
        let e = Graph::new(Pattern::AllToAll, 9, 3).check(7).unwrap_err();
        assert!(e.to_string().contains("9 dependencies"), "{e}");
        let e = Graph {
            period: 0,
            ..Graph::new(Pattern::Spread, 4, 3)
        }
        .check(7)
        .unwrap_err();
        assert!(e.to_string().contains("period"), "{e}");
        // More neighbours than points: the ends clip them.
        assert_eq!(
            Graph::new(Pattern::Nearest, 2, 3).radix(5).deps(1, 0),
            [0, 1]
        );
        assert!("stencil".parse::<Pattern>().is_err());
        for p in Pattern::ALL {
            assert_eq!(p.name().parse::<Pattern>().unwrap(), p);
            Graph::new(p, 4, 5).check(7).unwrap();
        }
    }
}
