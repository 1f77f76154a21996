// layernorm, row-wise: y = (x − μ)/√(σ² + eps)·gamma + beta along each row of
// a rows×cols row-major matrix, μ and σ² the row's mean and (population)
// variance, gamma and beta one value per column.
//
// A segment of `seg` invocations (a power of two, at most 256) computes one
// row, and a workgroup of 256 holds 256/seg segments: one row per workgroup
// for rows of 129 columns or more, many short rows per workgroup otherwise.
// The invocations of a segment stride over its row together (coalesced).
// Two passes, each reduced over the segment by a tree of fan-in 16 in
// workgroup memory (segment_reduce, in shaders/lib): the mean, then the sum
// of squared deviations from it.
// Both sum `x − x₀`, x₀ the row's first element, so a row of 10⁴ + noise
// sums the noise, not the 10⁴s: f32 rounding of the large values would
// otherwise swamp it. Workgroups are numbered linearly (pel folds more than
// 65,535 of them into 2-D).

// `Params` is declared once, in Rust (`LayerNormParams` in kernels/src/layernorm.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    // Uniform across the workgroup: the whole group leaves together.
    if group >= p.groups {
        return;
    }
    let seg = p.seg;
    let at = segment(lid, group, seg, p.rows, p.cols);
    var shift = 0.0;
    if at.row < p.rows {
        shift = x[at.base];
    }
    let n = f32(p.cols);

    var s = 0.0;
    for (var c = at.lane; c < at.cols; c = c + seg) {
        s = s + (x[at.base + c] - shift);
    }
    let mean = segment_reduce(lid, at.first, seg, s, false) / n;
    // Everyone has read the sum before the scratch is reused.
    workgroupBarrier();

    var q = 0.0;
    for (var c = at.lane; c < at.cols; c = c + seg) {
        let d = (x[at.base + c] - shift) - mean;
        q = q + d * d;
    }
    let r = inverseSqrt(segment_reduce(lid, at.first, seg, q, false) / n + p.eps);

    for (var c = at.lane; c < at.cols; c = c + seg) {
        let d = (x[at.base + c] - shift) - mean;
        y[at.base + c] = d * r * gamma[c] + beta[c];
    }
}
