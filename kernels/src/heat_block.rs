//! heat_block: one step of [`heat`](crate::heat)'s 5-point stencil on a
//! block of rows of a larger grid, with the rows just above and below the
//! block given as buffers of their own. A grid cut into blocks of rows, one
//! a rank, steps with it: each rank's neighbours send it their edge rows
//! (the halo), which [`HeatBlock::edges_kernel`] copies out.
//!
//! The arithmetic is [`heat`](crate::heat)'s, term for term
//! (`u + α·(((u_n + u_s) + (u_e + u_w)) − 4u)`); heat's CPU step is this
//! one over the whole grid as one block, so on the CPU a grid stepped in
//! blocks is bitwise the grid stepped whole. Cells on the grid's boundary
//! keep their values.
//!
//! Per cell and step: 7 floating-point operations, 8 bytes moved.

use pel_runtime::{Kernel, Read, ReadWrite, Result};
use rayon::prelude::*;

use crate::ensure;
use crate::launch::builder;
use crate::uniform::wgsl_struct;

/// Cells one CPU task updates at the least.
const CPU_GRAIN: usize = 1 << 14;

wgsl_struct! {
    heat_block_params => Params;
    /// Both shaders' uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct HeatBlockParams {
        /// Cells per row.
        pub width: u32,
        /// Rows in the block.
        pub rows: u32,
        /// The grid row of the block's first row.
        pub row0: u32,
        /// Rows of the whole grid.
        pub height: u32,
        /// Diffusion number α, in [0, 0.25].
        pub alpha: f32,
        /// Padding to the uniform block's 16-byte alignment.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
        /// Padding.
        pub _pad2: u32,
    }
}

/// The step's WGSL source.
pub const WGSL: &str = concat!(
    include_str!("../../shaders/heat_block.wgsl"),
    heat_block_params!()
);

/// The edge copy's WGSL source.
pub const EDGES_WGSL: &str = concat!(
    include_str!("../../shaders/heat_edges.wgsl"),
    heat_block_params!()
);

/// The block step and the edge copy.
#[derive(Debug, Clone)]
pub struct HeatBlock {
    step: Kernel,
    edges: Kernel,
}

/// One step of the block `u` into `v` on rayon's pool; `north` and `south`
/// are the rows around it.
pub(crate) fn step_block(
    u: &[f32],
    north: &[f32],
    south: &[f32],
    v: &mut [f32],
    p: &HeatBlockParams,
) {
    let (w, rows) = (p.width as usize, p.rows as usize);
    let (row0, h) = (p.row0 as usize, p.height as usize);
    if w == 0 || rows == 0 || u.len() < w * rows || v.len() < w * rows {
        return;
    }
    let alpha = p.alpha;
    v[..w * rows]
        .par_chunks_mut(w)
        .enumerate()
        .with_min_len((CPU_GRAIN / w).max(1))
        .for_each(|(y, out)| {
            let c = &u[y * w..(y + 1) * w];
            let gy = row0 + y;
            if gy == 0 || gy + 1 >= h || w < 3 {
                out.copy_from_slice(c);
                return;
            }
            let n = if y == 0 {
                north
            } else {
                &u[(y - 1) * w..y * w]
            };
            let s = if y + 1 == rows {
                south
            } else {
                &u[(y + 1) * w..(y + 2) * w]
            };
            if n.len() < w || s.len() < w {
                return;
            }
            out[0] = c[0];
            out[w - 1] = c[w - 1];
            let cells = out[1..w - 1]
                .iter_mut()
                .zip(n[1..w - 1].iter().zip(&s[1..w - 1]))
                .zip(c[..w - 2].iter().zip(&c[2..]).zip(&c[1..w - 1]));
            for ((o, (&n, &s)), ((&we, &ea), &m)) in cells {
                *o = m + alpha * (((n + s) + (ea + we)) - 4.0 * m);
            }
        });
}

impl HeatBlock {
    /// Builds the kernels.
    pub fn new() -> Result<Self> {
        type Args = (Read<f32>, Read<f32>, Read<f32>, ReadWrite<f32>);
        let step = builder::<HeatBlockParams, Args>("heat_block", WGSL, |(u, n, s, v), p| {
            step_block(u, n, s, v, p)
        })
        .invocations(|p, _| p.width as u64 * p.rows as u64)
        .cost(|p, _| p.width as u64 * p.rows as u64)
        .build()?;
        type EdgeArgs = (Read<f32>, ReadWrite<f32>, ReadWrite<f32>);
        let edges = builder::<HeatBlockParams, EdgeArgs>(
            "heat_edges",
            EDGES_WGSL,
            |(u, top, bottom), p| {
                let (w, rows) = (p.width as usize, p.rows as usize);
                if rows == 0 || u.len() < w * rows || top.len() < w || bottom.len() < w {
                    return;
                }
                top[..w].copy_from_slice(&u[..w]);
                bottom[..w].copy_from_slice(&u[(rows - 1) * w..rows * w]);
            },
        )
        .invocations(|p, _| p.width as u64)
        .build()?;
        Ok(HeatBlock { step, edges })
    }

    /// The step: `(u, north, south, v)` with [`HeatBlockParams`].
    pub fn kernel(&self) -> &Kernel {
        &self.step
    }

    /// The edge copy: `(u, top, bottom)` with [`HeatBlockParams`].
    pub fn edges_kernel(&self) -> &Kernel {
        &self.edges
    }

    /// The params of a block of `rows` rows from grid row `row0` of a
    /// `width × height` grid, checked: the block inside the grid, α stable,
    /// sizes within `u32`.
    pub fn params(
        width: usize,
        height: usize,
        row0: usize,
        rows: usize,
        alpha: f32,
    ) -> Result<HeatBlockParams> {
        ensure(row0 + rows <= height, "heat_block", "rows", || {
            format!("rows {row0}..{} of a grid of {height} rows", row0 + rows)
        })?;
        ensure(
            (0.0..=crate::heat::MAX_ALPHA).contains(&alpha),
            "heat_block",
            "alpha",
            || {
                format!(
                    "alpha is {alpha}; the explicit 5-point scheme is stable only for 0 ≤ alpha ≤ {}",
                    crate::heat::MAX_ALPHA
                )
            },
        )?;
        let cells = width.saturating_mul(height);
        ensure(cells <= u32::MAX as usize, "heat_block", "grid", || {
            format!("{width} × {height} cells; at most {} in all", u32::MAX)
        })?;
        Ok(HeatBlockParams {
            width: width as u32,
            rows: rows as u32,
            row0: row0 as u32,
            height: height as u32,
            alpha,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        })
    }
}
