//! The softmax sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::softmax`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::softmax::*;

/// A softmax of a seeded random rows×cols matrix; y starts poisoned (NaN).
/// Each row is, at random, one of: logits in [-8, 8); values in [-80, 80);
/// values in [-4, 4) with one dominant value of 100 (`exp(100)` overflows
/// f32); values 1000 + [-4, 4) (every naive exp overflows).
///
/// Tolerance: element `j` of a row with maximum `m` within
/// `ε·yⱼ·(16 + ⌈cols/8⌉ + 3|xⱼ − m| + 3Σₖ yₖ|xₖ − m|) + 2·f32::MIN_POSITIVE`:
/// WGSL lets `exp(a)` be off by `3 + 2|a|` ulp and the rounding of `xⱼ − m`
/// adds `|xⱼ − m|/2` more; the sum's error is the softmax-weighted mean of
/// its terms' errors plus the chunked summation's (`⌈cols/8⌉ + 10`
/// roundings deep on the CPU, at most `⌈cols/seg⌉ + 30` on the GPU, never
/// more than `⌈cols/8⌉ + 16` on either); the division adds 2.5 ulp. GPUs
/// flush subnormals, and llvmpipe's exp flushes results just above them
/// too, hence the absolute `2·f32::MIN_POSITIVE`.
pub type SoftmaxTrial = Sampled<SoftmaxProblem>;

/// The input of a [`SoftmaxTrial`].
pub struct SoftmaxProblem {
    softmax: Softmax,
    rows: usize,
    cols: usize,
    x: Input<f32>,
}

/// Seeded rows of the four kinds [`SoftmaxTrial`] describes.
pub(crate) fn random_rows(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = verify::rng(seed);
    let mut xs = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        match rng.random_range(0..4) {
            0 => xs.extend((0..cols).map(|_| rng.random_range(-8.0f32..8.0))),
            1 => xs.extend((0..cols).map(|_| rng.random_range(-80.0f32..80.0))),
            2 => {
                let hot = rng.random_range(0..cols.max(1));
                xs.extend((0..cols).map(|j| {
                    let v = rng.random_range(-4.0f32..4.0);
                    if j == hot { 100.0 } else { v }
                }));
            }
            _ => xs.extend((0..cols).map(|_| 1000.0 + rng.random_range(-4.0f32..4.0))),
        }
    }
    xs
}

/// Prepares a softmax of a rows×cols matrix.
pub fn trial(rt: &Runtime, (rows, cols): (usize, usize), seed: u64) -> Result<SoftmaxTrial> {
    let problem = SoftmaxProblem {
        softmax: Softmax::new()?,
        rows,
        cols,
        x: Input::new(rt, random_rows(rows, cols, seed)),
    };
    Ok(Sampled::poisoned(rt, problem, rows * cols, f32::NAN))
}

impl Problem for SoftmaxProblem {
    type Out = f32;
    const TOLERANCE: &'static str =
        "ε·yⱼ·(16 + ⌈cols/8⌉ + 3|xⱼ−m| + 3Σₖyₖ|xₖ−m|) + 2·MIN_POSITIVE per element, m the row max";
    fn shape(&self) -> String {
        format!("{}×{}", self.rows, self.cols)
    }
    fn work(&self, _: &[f32]) -> Work {
        Work::per(self.x.len(), 5.0, 8.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.x.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, y: &Buffer<f32>) -> Result<RunInfo> {
        let (rows, cols) = (self.rows, self.cols);
        self.softmax.run(rt, target, self.x.buf(), y, rows, cols)
    }
    fn compare(&mut self, got: &[f32]) -> Compare {
        let (rows, cols, xs) = (self.rows, self.cols, &self.x);
        let want = reference(xs, rows, cols);
        // Per row: its maximum, and Σ yₖ|xₖ − m| (the sum's error weight).
        let row_terms: Vec<(f64, f64)> = xs
            .chunks_exact(cols.max(1))
            .zip(want.chunks_exact(cols.max(1)))
            .map(|(x, y)| {
                let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let w = x.iter().zip(y).map(|(&v, y)| y * (m - v as f64)).sum();
                (m, w)
            })
            .collect();
        let eps = f32::EPSILON as f64;
        let depth = 16.0 + cols.div_ceil(8) as f64;
        verify::compare(verify::f64s(got), want.iter().copied(), |i| {
            let (m, w) = row_terms[i / cols];
            let a = m - xs[i] as f64;
            eps * want[i] * (depth + 3.0 * a + 3.0 * w) + 2.0 * f32::MIN_POSITIVE as f64
        })
    }
}

/// Columns of the sample's matrix: a 1,024-token attention row.
pub(crate) const SAMPLE_COLS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    use super::verify::{Trial, cpu_runtime as cpu};
    use pel_runtime::Backend;

    #[test]
    fn rows_a_naive_exp_overflows_come_out_right() {
        // exp(100) and exp(1000) are infinite in f32.
        let x = [100.0f32, 0.0, -100.0, 1000.0, 1000.0, 999.0];
        let mut y = [f32::NAN; 6];
        for (x, y) in x.chunks_exact(3).zip(y.chunks_exact_mut(3)) {
            softmax_row(x, y);
        }
        let want = reference(&x, 2, 3);
        for (got, want) in y.iter().zip(&want) {
            assert!(
                (*got as f64 - want).abs() <= 1e-6 * want + 1e-30,
                "{y:?} vs {want:?}"
            );
        }
        assert_eq!(y[0], 1.0);
    }

    #[test]
    fn the_check_catches_a_wrong_element() {
        let rt = cpu();
        let mut t = trial(&rt, (5, 40), 1).expect("trial");
        let check = verify::run_check(&mut t, &rt, Target::On(Backend::Cpu)).expect("runs");
        assert!(check.verified(), "{check}");
        // The row's largest output, a thousandth off.
        let (i, _) = t.got[..40]
            .iter()
            .enumerate()
            .fold((0, 0.0), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
        t.got[i] *= 1.001;
        let check = t.verify(Backend::Cpu);
        assert_eq!(
            (check.mismatches, check.first_bad.map(|b| b.0)),
            (1, Some(i))
        );
    }
}
