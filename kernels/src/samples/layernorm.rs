//! The layernorm sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::layernorm`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::layernorm::*;

/// A layer norm of a seeded random rows×cols matrix with eps = 1e-5, γ in
/// [0.5, 1.5) and β in [-0.5, 0.5); y starts poisoned (NaN). Each row is, at
/// random, one of: values in [-3, 3); 10⁴ + [-1, 1) (a large common offset);
/// values in [-100, 100); 5 + [-10⁻³, 10⁻³) (variance far below eps).
///
/// Tolerance: element `j` within
/// `(⌈cols/8⌉ + 16)·ε·(|γⱼ|·(|xⱼ − μ| + |xⱼ − x₀| + mean|x − x₀|)/√(σ² + eps) + |βⱼ|)`,
/// `x₀` the row's first element (both implementations sum `x − x₀`): the
/// worst case of the chunked sums (`⌈cols/8⌉ + 10` roundings deep on the
/// CPU, at most `⌈cols/seg⌉ + 30` on the GPU, never more than
/// `⌈cols/8⌉ + 16` on either) carried through the mean, the variance,
/// WGSL's 2-ulp `inverseSqrt` and the output's multiply-adds, with a factor
/// of 2 to spare (a rounding is off by at most ε/2).
pub type LayerNormTrial = Sampled<LayerNormProblem>;

/// The inputs of a [`LayerNormTrial`].
pub struct LayerNormProblem {
    layernorm: LayerNorm,
    rows: usize,
    cols: usize,
    x: Input<f32>,
    gamma: Input<f32>,
    beta: Input<f32>,
}

/// Seeded rows of the four kinds [`LayerNormTrial`] describes.
pub(crate) fn random_rows(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = verify::rng(seed);
    let mut xs = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let (offset, half) = match rng.random_range(0..4) {
            0 => (0.0f32, 3.0f32),
            1 => (1e4, 1.0),
            2 => (0.0, 100.0),
            _ => (5.0, 1e-3),
        };
        xs.extend((0..cols).map(|_| offset + rng.random_range(-half..half)));
    }
    xs
}

/// Prepares a layer norm of a rows×cols matrix.
pub fn trial(rt: &Runtime, (rows, cols): (usize, usize), seed: u64) -> Result<LayerNormTrial> {
    let problem = LayerNormProblem {
        layernorm: LayerNorm::new()?,
        rows,
        cols,
        x: Input::new(rt, random_rows(rows, cols, seed)),
        gamma: Input::new(rt, verify::random_f32(seed + 1, cols, 0.5, 1.5)),
        beta: Input::new(rt, verify::random_f32(seed + 2, cols, -0.5, 0.5)),
    };
    Ok(Sampled::poisoned(rt, problem, rows * cols, f32::NAN))
}

impl Problem for LayerNormProblem {
    type Out = f32;
    const TOLERANCE: &'static str =
        "(⌈cols/8⌉+16)·ε·(|γⱼ|(|xⱼ−μ| + |xⱼ−x₀| + mean|x−x₀|)/√(σ²+eps) + |βⱼ|) per element";
    fn shape(&self) -> String {
        format!("{}×{}", self.rows, self.cols)
    }
    fn work(&self, _: &[f32]) -> Work {
        Work::per(self.x.len(), 11.0, 8.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.x.write(rt)?;
        self.gamma.write(rt)?;
        self.beta.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, y: &Buffer<f32>) -> Result<RunInfo> {
        let (x, gamma, beta) = (self.x.buf(), self.gamma.buf(), self.beta.buf());
        let (rows, cols) = (self.rows, self.cols);
        self.layernorm
            .run(rt, target, x, gamma, beta, y, rows, cols, DEFAULT_EPS)
    }
    fn compare(&mut self, got: &[f32]) -> Compare {
        let (rows, cols, xs, gs, bs) = (self.rows, self.cols, &self.x, &self.gamma, &self.beta);
        let want = reference(xs, gs, bs, rows, cols, DEFAULT_EPS);
        // Per row: μ, √(σ² + eps), x₀ and mean|x − x₀|.
        let row_terms: Vec<(f64, f64, f64, f64)> = xs
            .chunks_exact(cols.max(1))
            .map(|row| {
                let (mean, sigma) = mean_sigma(row, DEFAULT_EPS);
                let x0 = row[0] as f64;
                let spread =
                    row.iter().map(|&v| (v as f64 - x0).abs()).sum::<f64>() / row.len() as f64;
                (mean, sigma, x0, spread)
            })
            .collect();
        let scale = (cols.div_ceil(8) as f64 + 16.0) * f32::EPSILON as f64;
        verify::compare(verify::f64s(got), want, |i| {
            let (mean, sigma, x0, spread) = row_terms[i / cols];
            let (x, j) = (xs[i] as f64, i % cols);
            let centred = (x - mean).abs() + (x - x0).abs() + spread;
            scale * ((gs[j] as f64).abs() * centred / sigma + (bs[j] as f64).abs())
        })
    }
}

/// Columns of the sample's matrix: a transformer's hidden size.
pub(crate) const SAMPLE_COLS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    use super::verify::{Trial, cpu_runtime as cpu};
    use pel_runtime::Backend;

    #[test]
    fn a_large_common_offset_costs_no_precision() {
        let cols = 1000;
        let x: Vec<f32> = verify::random_f32(5, cols, -1.0, 1.0)
            .into_iter()
            .map(|v| 1e4 + v)
            .collect();
        let (gamma, beta) = (vec![1.0f32; cols], vec![0.0f32; cols]);
        let want = reference(&x, &gamma, &beta, 1, cols, DEFAULT_EPS);
        let mut y = vec![f32::NAN; cols];
        layernorm_row(&x, &gamma, &beta, &mut y, DEFAULT_EPS);
        let err = |y: &[f32]| {
            y.iter()
                .zip(&want)
                .map(|(&g, w)| (g as f64 - w).abs())
                .fold(0.0, f64::max)
        };
        assert!(err(&y) < 1e-4, "shifted two-pass: error {}", err(&y));

        // The one-pass E[x²] − E[x]² in f32 loses the noise entirely.
        let n = cols as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| v * v).sum::<f32>() / n - mean * mean;
        let naive: Vec<f32> = x
            .iter()
            .map(|v| (v - mean) / (var + DEFAULT_EPS).max(0.0).sqrt())
            .collect();
        assert!(err(&naive) > 0.1, "one-pass: error {}", err(&naive));
    }

    #[test]
    fn the_check_catches_a_wrong_element() {
        let rt = cpu();
        let mut t = trial(&rt, (6, 33), 2).expect("trial");
        let check = verify::run_check(&mut t, &rt, Target::On(Backend::Cpu)).expect("runs");
        assert!(check.verified(), "{check}");
        t.got[40] += 1e-3;
        let check = t.verify(Backend::Cpu);
        assert_eq!(
            (check.mismatches, check.first_bad.map(|b| b.0)),
            (1, Some(40))
        );
    }
}
