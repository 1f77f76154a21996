//! blur: a 2-D convolution of a width×height f32 image with a
//! (2r+1)×(2r+1) kernel, clamp-to-edge borders; the sample blurs with a
//! Gaussian ([`gaussian_kernel`]).
//!
//! The kernel is applied whole, not as a separable pair, so any weights
//! work; like image libraries, it is applied as a cross-correlation:
//! `out[y][x] = Σ w[dy+r][dx+r] · in[clamp(y+dy)][clamp(x+dx)]` over
//! `dy, dx ∈ [-r, r]`, rows clamped to `[0, height)` and columns to
//! `[0, width)` (the same as a convolution for symmetric weights such as a
//! Gaussian's). The radius is at most [`MAX_RADIUS`].
//!
//! Per pixel: 2(2r+1)² floating-point operations, 8 bytes moved at the
//! least (read the pixel, write its result; neighbours come from cache or
//! workgroup memory). Compute-bound for any but the smallest kernels.
//!
//! The GPU stages each 16×16 tile of the image plus its r-pixel halo in
//! workgroup memory; the CPU works on rows, one kernel row at a time over a
//! clamped copy of the source row, in loops that vectorise. Both sum each
//! kernel row, then the rows.

use pel_runtime::{
    Backend, Buffer, Kernel, Read, ReadWrite, Result, RunInfo, Runtime, Target, Task,
};
use rand::Rng;
use rayon::prelude::*;

use crate::verify::{self, Check, Trial, Work};
use crate::{Sample, invalid, u32_len};

/// The WGSL source.
pub const WGSL: &str = include_str!("../../shaders/blur.wgsl");

/// Edge of the square tile of the output one GPU workgroup computes.
pub const TILE: usize = 16;

/// The largest kernel radius (a 17×17 kernel): the GPU stages a tile plus
/// its halo of at most this many pixels in workgroup memory.
pub const MAX_RADIUS: usize = 8;

/// Pixels one CPU task blurs at the least: enough to amortise rayon's task
/// cost and the per-task scratch rows.
const CPU_GRAIN: usize = 1 << 14;

/// The shader's uniform block.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlurParams {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Kernel radius r: the kernel is (2r+1)×(2r+1).
    pub radius: u32,
    /// Tiles across a row: `ceil(width / 16)`.
    pub tiles_x: u32,
    /// Tiles in all: `ceil(width / 16) · ceil(height / 16)`.
    pub tiles: u32,
}

/// The blur kernel.
#[derive(Debug, Clone)]
pub struct Blur {
    kernel: Kernel,
}

/// Adds `Σ_kx wrow[kx]·padded[x + kx]` (one kernel row's sum, summed from
/// kx = 0 up) to each `out[x]`, eight pixels at a time with their sums in
/// registers.
#[inline]
fn add_row(out: &mut [f32], padded: &[f32], wrow: &[f32]) {
    const LANES: usize = 8;
    let mut chunks = out.chunks_exact_mut(LANES);
    for (c, o) in (&mut chunks).enumerate() {
        let x = c * LANES;
        let mut sum = [0.0f32; LANES];
        for (kx, &wt) in wrow.iter().enumerate() {
            let Ok(src) = <&[f32; LANES]>::try_from(&padded[x + kx..x + kx + LANES]) else {
                continue;
            };
            for (s, &v) in sum.iter_mut().zip(src) {
                *s += wt * v;
            }
        }
        for (o, s) in o.iter_mut().zip(sum) {
            *o += s;
        }
    }
    let x0 = out.len() / LANES * LANES;
    for (x, o) in out.iter_mut().enumerate().skip(x0) {
        let sum = wrow
            .iter()
            .zip(&padded[x..])
            .fold(0.0f32, |s, (&wt, &v)| s + wt * v);
        *o += sum;
    }
}

/// Blurs rows of `src` into `dst` (both width×height) on rayon's pool.
fn blur_rows(src: &[f32], weights: &[f32], dst: &mut [f32], p: &BlurParams) {
    let (w, h, r) = (p.width as usize, p.height as usize, p.radius as usize);
    let side = 2 * r + 1;
    if w == 0 || h == 0 || src.len() < w * h || dst.len() < w * h || weights.len() < side * side {
        return;
    }
    dst[..w * h]
        .par_chunks_mut(w)
        .enumerate()
        .with_min_len((CPU_GRAIN / w).max(1))
        .for_each_init(
            // Per task, not per pixel: the source row, clamped at both ends.
            || vec![0.0f32; w + 2 * r],
            |padded, (y, out)| {
                out.fill(0.0);
                for (ky, wrow) in weights.chunks_exact(side).take(side).enumerate() {
                    let sy = (y + ky).saturating_sub(r).min(h - 1);
                    let line = &src[sy * w..(sy + 1) * w];
                    padded[..r].fill(line[0]);
                    padded[r..r + w].copy_from_slice(line);
                    padded[r + w..].fill(line[w - 1]);
                    add_row(out, padded, wrow);
                }
            },
        );
}

impl Blur {
    /// Builds the kernel.
    pub fn new() -> Result<Self> {
        let kernel = Kernel::builder("blur", WGSL)
            .params::<BlurParams>()
            .cpu::<(Read<f32>, Read<f32>, ReadWrite<f32>)>(|args, p| {
                let (src, weights, dst) = args.split();
                blur_rows(src, weights, dst, p);
            })
            .workgroups(|p, _| p.tiles as u64)
            .cost(|p, _| {
                let side = 2 * p.radius as u64 + 1;
                p.width as u64 * p.height as u64 * side * side
            })
            .build()?;
        Ok(Blur { kernel })
    }

    /// The underlying kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Blurs `src` (width×height, row-major) into `dst` (the same size)
    /// with `weights`, a (2r+1)×(2r+1) kernel, row-major, r ≤ [`MAX_RADIUS`].
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        rt: &Runtime,
        target: Target,
        src: &Buffer<f32>,
        weights: &Buffer<f32>,
        dst: &Buffer<f32>,
        width: usize,
        height: usize,
    ) -> Result<RunInfo> {
        let p = Self::params(src, weights, dst, width, height)?;
        rt.execute(target, &self.kernel, &[src, weights, dst], &p)
    }

    /// Submits the blur of [`run`](Self::run) and returns its task at once.
    #[allow(clippy::too_many_arguments)]
    pub fn submit(
        &self,
        rt: &Runtime,
        target: Target,
        src: &Buffer<f32>,
        weights: &Buffer<f32>,
        dst: &Buffer<f32>,
        width: usize,
        height: usize,
    ) -> Result<Task> {
        let p = Self::params(src, weights, dst, width, height)?;
        rt.submit_to(target, &self.kernel, &[src, weights, dst], &p)
    }

    /// The params of a blur, checked: the image sizes and the kernel's shape.
    pub fn params(
        src: &Buffer<f32>,
        weights: &Buffer<f32>,
        dst: &Buffer<f32>,
        width: usize,
        height: usize,
    ) -> Result<BlurParams> {
        let radius = radius_of(weights.len())?;
        let pixels = width.checked_mul(height);
        for (arg, buf) in [("src", src), ("dst", dst)] {
            if pixels != Some(buf.len()) {
                return Err(invalid(
                    "blur",
                    arg,
                    format!(
                        "a {width}×{height} image needs {} elements, but {arg} has {}",
                        width as u128 * height as u128,
                        buf.len()
                    ),
                ));
            }
        }
        u32_len("blur", "src", src.len())?;
        let tiles_x = width.div_ceil(TILE);
        // At most one tile per pixel, so this fits in u32 when the image does.
        let tiles = tiles_x * height.div_ceil(TILE);
        Ok(BlurParams {
            width: u32_len("blur", "width", width)?,
            height: u32_len("blur", "height", height)?,
            radius: radius as u32,
            tiles_x: u32_len("blur", "width", tiles_x)?,
            tiles: u32_len("blur", "src", tiles)?,
        })
    }
}

/// The radius r of a (2r+1)×(2r+1) kernel of `len` weights, or why `len`
/// is not the size of one.
fn radius_of(len: usize) -> Result<usize> {
    let side = len.isqrt();
    let bad = |message: String| Err(invalid("blur", "weights", message));
    if len == 0 {
        return bad(
            "weights is empty; a blur kernel needs (2r+1)×(2r+1) weights, at least 1".into(),
        );
    }
    if side * side != len {
        return bad(format!(
            "weights has {len} elements, which is not a square; a blur kernel needs (2r+1)×(2r+1) weights"
        ));
    }
    if side.is_multiple_of(2) {
        return bad(format!(
            "weights is {side}×{side}, an even side; a blur kernel needs an odd side 2r+1 so that it centres on the pixel"
        ));
    }
    let radius = side / 2;
    if radius > MAX_RADIUS {
        return bad(format!(
            "weights is {side}×{side} (radius {radius}); the most the GPU's tile holds is radius {MAX_RADIUS} ({0}×{0})",
            2 * MAX_RADIUS + 1
        ));
    }
    Ok(radius)
}

/// A normalised (2r+1)×(2r+1) Gaussian kernel, row-major: weights
/// proportional to `exp(-(dx² + dy²) / (2σ²))`, summing to 1.
///
/// # Examples
///
/// ```
/// let w = pel_kernels::blur::gaussian_kernel(1.0, 2)?;
/// assert_eq!(w.len(), 25);
/// assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
pub fn gaussian_kernel(sigma: f32, radius: usize) -> Result<Vec<f32>> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(invalid(
            "blur",
            "sigma",
            format!("sigma is {sigma}; a Gaussian needs a finite sigma greater than 0"),
        ));
    }
    if radius > MAX_RADIUS {
        return Err(invalid(
            "blur",
            "radius",
            format!("radius {radius} is more than the {MAX_RADIUS} the GPU's tile holds"),
        ));
    }
    let r = radius as i64;
    let s2 = 2.0 * sigma as f64 * sigma as f64;
    let raw: Vec<f64> = (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (-((dx * dx + dy * dy) as f64) / s2).exp()))
        .collect();
    let total: f64 = raw.iter().sum();
    Ok(raw.iter().map(|&v| (v / total) as f32).collect())
}

/// The serial reference in f64: each pixel's blurred value and its
/// `Σ|w·x|` (for the tolerance). `src` must be width×height and `weights`
/// (2r+1)×(2r+1).
pub fn reference(
    src: &[f32],
    width: usize,
    height: usize,
    weights: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let side = weights.len().isqrt();
    let r = side / 2;
    let mut out = vec![0.0f64; width * height];
    let mut mag = vec![0.0f64; width * height];
    for y in 0..height {
        for x in 0..width {
            let (mut s, mut m) = (0.0f64, 0.0f64);
            for ky in 0..side {
                let sy = (y + ky).saturating_sub(r).min(height - 1);
                for kx in 0..side {
                    let sx = (x + kx).saturating_sub(r).min(width - 1);
                    let t = weights[ky * side + kx] as f64 * src[sy * width + sx] as f64;
                    s += t;
                    m += t.abs();
                }
            }
            out[y * width + x] = s;
            mag[y * width + x] = m;
        }
    }
    (out, mag)
}

/// A Gaussian blur of a seeded random width×height image (values in
/// [0, 1)) with a (2r+1)×(2r+1) kernel of seeded σ; the output starts
/// poisoned (NaN).
///
/// Tolerance: each pixel within `(2r+2)·ε·Σ|w·x|` of the f64 reference:
/// the worst-case rounding of 2r+1 row sums of 2r+1 products each, then of
/// their sum (the order both implementations use), with room for the
/// products' roundings.
pub struct BlurTrial {
    blur: Blur,
    width: usize,
    height: usize,
    image: Vec<f32>,
    weights: Vec<f32>,
    src: Buffer<f32>,
    w: Buffer<f32>,
    dst: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares a blur of a width×height image with a kernel of `radius`.
pub fn trial(
    rt: &Runtime,
    (width, height, radius): (usize, usize, usize),
    seed: u64,
) -> Result<BlurTrial> {
    let sigma = 0.5 + radius as f32 * verify::rng(seed).random_range(0.3f32..0.6);
    let weights = gaussian_kernel(sigma, radius)?;
    let image = verify::random_f32(seed, width * height, 0.0, 1.0);
    Ok(BlurTrial {
        blur: Blur::new()?,
        width,
        height,
        src: rt.buffer(&image),
        w: rt.buffer(&weights),
        dst: rt.zeros(width * height),
        image,
        weights,
        got: Vec::new(),
    })
}

impl Trial for BlurTrial {
    fn shape(&self) -> String {
        let side = self.weights.len().isqrt();
        format!("{}×{}, {side}×{side}", self.width, self.height)
    }
    fn work(&self) -> Work {
        Work::per(
            self.width * self.height,
            2.0 * self.weights.len() as f64,
            8.0,
        )
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.src, &self.image)?;
        rt.write(&self.w, &self.weights)?;
        rt.write(&self.dst, &vec![f32::NAN; self.dst.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.blur.run(
            rt,
            target,
            &self.src,
            &self.w,
            &self.dst,
            self.width,
            self.height,
        )?;
        rt.read_to_vec(&self.dst, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (want, mag) = reference(&self.image, self.width, self.height, &self.weights);
        let r = self.weights.len().isqrt() / 2;
        let k = (2 * r + 2) as f64 * f32::EPSILON as f64;
        let cmp = verify::compare(self.got.iter().map(|&v| v as f64), want, |i| {
            k * mag[i] + f32::MIN_POSITIVE as f64
        });
        cmp.into_check(
            self.shape(),
            backend,
            (self.width * self.height).abs_diff(self.got.len()),
            "(2r+2)·ε·Σ|w·x| per pixel",
        )
    }
}

/// Blurs a seeded random image and checks it (see [`BlurTrial`]).
pub fn check(
    rt: &Runtime,
    target: Target,
    dims: (usize, usize, usize),
    seed: u64,
) -> Result<Check> {
    verify::run_check(&mut trial(rt, dims, seed)?, rt, target)
}

/// The sample's kernel radius: a 7×7 Gaussian.
const SAMPLE_RADIUS: usize = 3;

/// This module's entries in [`samples`](crate::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "blur",
        about: "Gaussian blur of an f32 image, 7×7 kernel, clamp-to-edge; 16×16 tiles plus halo in workgroup memory on the GPU (compute-bound)",
        size_meaning: "pixels, as a square image",
        default_size: 1 << 19,
        tour_size: 1 << 15,
        prepare: |rt, pixels, seed| {
            let (width, height) = crate::square(pixels);
            crate::boxed(trial(rt, (width, height, SAMPLE_RADIUS), seed))
        },
    }]
}
