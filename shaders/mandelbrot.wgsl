// mandelbrot: escape-time iteration counts over a width×height grid of the
// complex plane, one invocation per pixel, row-major. A launch computes the
// n pixels from `first` on (the whole image, or its part of a split call).

// `Params` is declared once, in Rust (`MandelbrotParams` in kernels/src/mandelbrot.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read_write> counts: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let k = pel_index(id, groups);
    if k >= p.n {
        return;
    }
    let i = p.first + k;
    let cx = p.x0 + f32(i % p.width) * p.dx;
    let cy = p.y0 + f32(i / p.width) * p.dy;
    var zx = 0.0;
    var zy = 0.0;
    var it = 0u;
    while it < p.max_iter {
        let zx2 = zx * zx;
        let zy2 = zy * zy;
        if zx2 + zy2 > 4.0 {
            break;
        }
        zy = 2.0 * zx * zy + cy;
        zx = zx2 - zy2 + cx;
        it = it + 1u;
    }
    counts[i] = it;
}
