// softmax, row-wise: y = exp(x − m) / Σ exp(x − m) along each row of a
// rows×cols row-major matrix, m the row's maximum (so no exp overflows).
//
// A segment of `seg` invocations (a power of two, at most 256) computes one
// row, and a workgroup of 256 holds 256/seg segments: one row per workgroup
// for rows of 129 columns or more, many short rows per workgroup otherwise,
// so a 3-column row does not keep 253 invocations idle. The invocations of a
// segment stride over its row together (neighbours read neighbouring
// elements, and neighbouring segments neighbouring rows: coalesced), each
// keeping its own running max, then its running sum. The two reductions are
// trees of fan-in 16 over the segment in workgroup memory (segment_reduce,
// in shaders/lib). The last sweep recomputes the exp rather than re-reading
// a stored one: on a GPU the memory traffic, not the exp, is the cost.
// Workgroups are numbered linearly (pel folds more than 65,535 of them into
// 2-D).

// `Params` is declared once, in Rust (`SoftmaxParams` in kernels/src/softmax.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

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

    // The row's maximum.
    var m = -3.40282347e38;
    for (var c = at.lane; c < at.cols; c = c + seg) {
        m = max(m, x[at.base + c]);
    }
    m = segment_reduce(lid, at.first, seg, m, true);
    // Everyone has read the max before the scratch is reused.
    workgroupBarrier();

    // Σ exp(x − m): every term is in (0, 1], and the max's term is 1.
    var sum = 0.0;
    for (var c = at.lane; c < at.cols; c = c + seg) {
        sum = sum + exp(x[at.base + c] - m);
    }
    let total = segment_reduce(lid, at.first, seg, sum, false);

    for (var c = at.lane; c < at.cols; c = c + seg) {
        y[at.base + c] = exp(x[at.base + c] - m) / total;
    }
}
