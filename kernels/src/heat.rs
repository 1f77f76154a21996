//! heat: 2-D heat diffusion on a width×height grid, many explicit (Jacobi)
//! steps of the 5-point stencil
//! `u' = u + α·(u_n + u_s + u_e + u_w − 4u)` on interior cells; boundary
//! cells keep their values (Dirichlet). The scheme is stable for
//! `0 ≤ α ≤ 0.25` (α = κ·Δt/Δx²); a larger α is refused.
//!
//! Per cell and step: 7 floating-point operations, 8 bytes moved (read the
//! cell, write its new value; neighbours come from cache). Memory-bound.
//!
//! Steps alternate between the caller's grid and a scratch buffer on the
//! device that computes them, never read back in between; after an odd
//! number of steps one copy brings the result back into the caller's grid.
//! On the GPU each invocation walks down a column of 8 cells with the cells
//! above, at and below in registers (each cell loaded once, its east and
//! west neighbours from the cache), consecutive invocations on consecutive
//! columns; the CPU updates rows in parallel in loops that vectorise.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};

use crate::launch::{Launch, builder, run_and_submit};
use crate::par::copy_par;
use crate::uniform::wgsl_struct;
use crate::{ensure, expect_2d, tile_grid};

/// Columns of the tile one GPU workgroup updates (one per invocation).
pub const TILE_WIDTH: usize = 64;

/// Rows of the tile one GPU workgroup updates (each invocation walks them).
pub const TILE_ROWS: usize = 8;

/// The largest stable α of the explicit 5-point scheme.
pub const MAX_ALPHA: f32 = 0.25;

/// Cells one CPU task updates at the least.
const CPU_GRAIN: usize = 1 << 14;

wgsl_struct! {
    heat_params => Params;
    /// The shader's uniform block (both entry points).
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct HeatParams {
        /// Cells per row.
        pub width: u32,
        /// Rows.
        pub height: u32,
        /// Diffusion number α = κ·Δt/Δx², in [0, 0.25].
        pub alpha: f32,
        /// Tiles across the grid: `ceil(width / 64)`.
        pub tiles_x: u32,
        /// Tiles in all: `ceil(width / 64) · ceil(height / 8)`.
        pub tiles: u32,
    }
}

/// The WGSL source: `main` (one step) and `copy`.
pub const WGSL: &str = concat!(include_str!("../../shaders/heat.wgsl"), heat_params!());

/// The heat kernels (one step, and a copy) and the multi-step driver.
#[derive(Debug, Clone)]
pub struct Heat {
    step: Kernel,
    copy: Kernel,
}

/// One step from `u` into `v` (both width×height) on rayon's pool: the
/// whole grid as one block of [`heat_block`](crate::heat_block), whose
/// edge rows are the grid's boundary (so no halo is read).
fn step_rows(u: &[f32], v: &mut [f32], p: &HeatParams) {
    let whole = crate::heat_block::HeatBlockParams {
        width: p.width,
        rows: p.height,
        row0: 0,
        height: p.height,
        alpha: p.alpha,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    };
    crate::heat_block::step_block(u, &[], &[], v, &whole);
}

impl Heat {
    /// Builds the kernels.
    pub fn new() -> Result<Self> {
        type Args = (Read<f32>, ReadWrite<f32>);
        let step = builder::<HeatParams, Args>("heat", WGSL, |(u, v), p| step_rows(u, v, p))
            .workgroups(|p, _| p.tiles as u64)
            .cost(|p, _| p.width as u64 * p.height as u64)
            .build()?;
        let copy = builder::<HeatParams, Args>("heat_copy", WGSL, |(u, v), p| {
            let n = (p.width as usize * p.height as usize)
                .min(u.len())
                .min(v.len());
            copy_par(&u[..n], &mut v[..n], CPU_GRAIN);
        })
        .entry("copy")
        .invocations(|p, _| p.width as u64 * p.height as u64)
        .build()?;
        Ok(Heat { step, copy })
    }

    /// The one-step kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.step
    }

    /// The copy kernel (for an odd number of steps).
    pub fn copy_kernel(&self) -> &Kernel {
        &self.copy
    }

    run_and_submit! {
        /// Runs `steps` steps of diffusion on `grid` (width×height, row-major),
        /// leaving the result in `grid`. Every step runs at `target`, the data
        /// staying where it is computed. Zero steps leave `grid` as it is (one
        /// copy runs, out of it).
        run,
        /// Submits the steps of [`run`](Self::run) and returns the last one's
        /// task without waiting; each step reads the one before, so the runtime
        /// orders them.
        submit = passes(grid: &Buffer<f32>, width: usize, height: usize, alpha: f32, steps: usize);
    }

    /// Launches the steps in order (and the copy back, after an odd number)
    /// and returns what the last launch gave.
    fn passes<L: Launch>(
        &self,
        l: &mut L,
        grid: &Buffer<f32>,
        width: usize,
        height: usize,
        alpha: f32,
        steps: usize,
    ) -> Result<L::Out> {
        let p = Self::params(grid, width, height, alpha)?;
        let scratch: Buffer<f32> = l.rt().zeros(grid.len());
        if steps == 0 {
            return l.launch(&self.copy, &[grid, &scratch], &p);
        }
        let mut last = l.launch(&self.step, &[grid, &scratch], &p)?;
        let (mut src, mut dst) = (&scratch, grid);
        for _ in 1..steps {
            last = l.launch(&self.step, &[src, dst], &p)?;
            std::mem::swap(&mut src, &mut dst);
        }
        if steps % 2 == 1 {
            // The last step wrote the scratch buffer.
            last = l.launch(&self.copy, &[&scratch, grid], &p)?;
        }
        Ok(last)
    }

    /// The params of a run, checked: the grid's size and α's stability.
    pub fn params(
        grid: &Buffer<f32>,
        width: usize,
        height: usize,
        alpha: f32,
    ) -> Result<HeatParams> {
        expect_2d("heat", "grid", grid.len(), (width, height), "grid")?;
        ensure((0.0..=MAX_ALPHA).contains(&alpha), "heat", "alpha", || {
            format!(
                "alpha is {alpha}; the explicit 5-point scheme is stable only for 0 ≤ alpha ≤ {MAX_ALPHA} (alpha = κ·Δt/Δx²: take a smaller time step)"
            )
        })?;
        let tile = (TILE_WIDTH, TILE_ROWS);
        let [width, height, tiles_x, tiles] =
            tile_grid(("heat", "grid"), grid.len(), (width, height), tile)?;
        Ok(HeatParams {
            width,
            height,
            alpha,
            tiles_x,
            tiles,
        })
    }
}

/// The serial reference in f64: the grid after `steps` steps.
/// `initial` must be width×height.
pub fn reference(
    initial: &[f32],
    width: usize,
    height: usize,
    alpha: f32,
    steps: usize,
) -> Vec<f64> {
    let mut u: Vec<f64> = initial.iter().map(|&v| v as f64).collect();
    let mut v = u.clone();
    let a = alpha as f64;
    for _ in 0..steps {
        for y in 1..height.saturating_sub(1) {
            for x in 1..width.saturating_sub(1) {
                let i = y * width + x;
                let sum = u[i - width] + u[i + width] + u[i + 1] + u[i - 1];
                v[i] = u[i] + a * (sum - 4.0 * u[i]);
            }
        }
        std::mem::swap(&mut u, &mut v);
    }
    u
}
