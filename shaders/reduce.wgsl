// min, max and argmax, one pass: each workgroup reduces 256 consecutive
// elements to one partial result. An invocation first folds 4 elements, 64
// apart (every load of the workgroup is coalesced), then the 64 values are
// halved in workgroup memory (6 steps). The host side runs passes until one
// value is left, so the data never leaves the GPU. The entries ending in
// `_light` (the kernels' "light" variants) meet at one barrier instead of
// 6, after which invocation 0 folds the 64 values in order: faster where a
// barrier is dear, as on a GPU emulated by a CPU.
//
// `min_pass` and `max_pass`: NaNs are ignored; a partial is NaN only when all
// its elements are.
//
// argmax reduces (value, index) pairs. Entry `first` reads the input, where a
// candidate's index is its position; entry `merge` reads the partial pairs of
// a previous pass. The best candidate: NaNs are ignored, the larger value
// wins, and on a tie (-0 and +0 included) the lower index wins, so the result
// is the first maximum whatever the order of the tree. A group whose
// candidates are all NaN gives (NaN, 0xffffffff).
//
// NaN is recognised by its bits, since a shader compiler may assume `v != v`
// false. Past the end of the input an invocation reads the last element
// again: a repeated element changes neither the min, the max nor the argmax,
// so no identity value (and no NaN constant) is needed.

// `Params` is declared once, in Rust (`ReduceParams` in kernels/src/reduce.rs),
// and appended to this source by pel-kernels.

// The elements (the candidates' values).
@group(0) @binding(0) var<storage, read> x: array<f32>;
// The candidates' indices (`merge` only).
@group(0) @binding(1) var<storage, read> idx: array<u32>;
// Each workgroup's result (for argmax, its best value).
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
// Each workgroup's best index (argmax only).
@group(0) @binding(3) var<storage, read_write> partial_idx: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;
const PER: u32 = 4u;
const CHUNK: u32 = 256u; // WG · PER
const NONE: u32 = 0xffffffffu;
var<workgroup> scratch: array<f32, 64>;
var<workgroup> scratch_idx: array<u32, 64>;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Element k of this invocation's PER (k < PER), clamped to the last.
fn element(group: u32, lid: u32, k: u32) -> u32 {
    return min(group * CHUNK + k * WG + lid, p.n - 1u);
}

// ---- min and max

// The smaller (or larger) of a and b, ignoring a NaN; NaN only if both are.
fn pick(a: f32, b: f32, smaller: bool) -> f32 {
    if is_nan(a) {
        return b;
    }
    if is_nan(b) {
        return a;
    }
    return select(max(a, b), min(a, b), smaller);
}

// This invocation's PER elements folded into one.
fn fold(lid: u32, group: u32, smaller: bool) -> f32 {
    var v = x[element(group, lid, 0u)];
    for (var k = 1u; k < PER; k = k + 1u) {
        v = pick(v, x[element(group, lid, k)], smaller);
    }
    return v;
}

fn reduce(lid: u32, group: u32, smaller: bool) {
    scratch[lid] = fold(lid, group, smaller);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            scratch[lid] = pick(scratch[lid], scratch[lid + s], smaller);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        partial[group] = scratch[0];
    }
}

// The variant light on barriers: one barrier, then invocation 0 folds the
// 64 values in order. (A function of its own: one `reduce` taking `light`
// as an argument ran 1.2–1.5× slower on llvmpipe.)
fn reduce_light(lid: u32, group: u32, smaller: bool) {
    scratch[lid] = fold(lid, group, smaller);
    workgroupBarrier();
    if lid == 0u {
        var v = scratch[0];
        for (var i = 1u; i < WG; i = i + 1u) {
            v = pick(v, scratch[i], smaller);
        }
        partial[group] = v;
    }
}

// Workgroups are numbered linearly (pel folds more than 65,535 of them into
// 2-D). Uniform across the workgroup: a whole spare group leaves together.
@compute @workgroup_size(64)
fn min_pass(@builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group < p.groups {
        reduce(lid, group, true);
    }
}

@compute @workgroup_size(64)
fn max_pass(@builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group < p.groups {
        reduce(lid, group, false);
    }
}

@compute @workgroup_size(64)
fn min_light(@builtin(local_invocation_index) lid: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group < p.groups {
        reduce_light(lid, group, true);
    }
}

@compute @workgroup_size(64)
fn max_light(@builtin(local_invocation_index) lid: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group < p.groups {
        reduce_light(lid, group, false);
    }
}

// ---- argmax

// Whether candidate (b, j) beats (a, i).
fn beats(b: f32, j: u32, a: f32, i: u32) -> bool {
    if is_nan(b) {
        return false;
    }
    if is_nan(a) {
        return true;
    }
    return b > a || (b == a && j < i);
}

// The workgroup's best of its 64 candidates, written as the group's: by a
// tree (6 barriers), or, `light`, by invocation 0 in order after one.
fn finish(lid: u32, group: u32, v: f32, i: u32, light: bool) {
    scratch[lid] = v;
    scratch_idx[lid] = i;
    workgroupBarrier();
    if light {
        if lid == 0u {
            for (var t = 1u; t < WG; t = t + 1u) {
                if beats(scratch[t], scratch_idx[t], scratch[0], scratch_idx[0]) {
                    scratch[0] = scratch[t];
                    scratch_idx[0] = scratch_idx[t];
                }
            }
        }
    } else {
        for (var s = WG / 2u; s > 0u; s = s >> 1u) {
            if lid < s {
                let b = scratch[lid + s];
                let j = scratch_idx[lid + s];
                if beats(b, j, scratch[lid], scratch_idx[lid]) {
                    scratch[lid] = b;
                    scratch_idx[lid] = j;
                }
            }
            workgroupBarrier();
        }
    }
    if lid == 0u {
        let best = scratch[0];
        partial[group] = best;
        partial_idx[group] = select(scratch_idx[0], NONE, is_nan(best));
    }
}

// A value and its index.
struct Candidate {
    v: f32,
    i: u32,
}

// The best of this invocation's PER input elements (index: position).
fn first_candidate(lid: u32, group: u32) -> Candidate {
    var i = element(group, lid, 0u);
    var v = x[i];
    for (var k = 1u; k < PER; k = k + 1u) {
        let j = element(group, lid, k);
        let b = x[j];
        if beats(b, j, v, i) {
            v = b;
            i = j;
        }
    }
    return Candidate(v, i);
}

// The best of this invocation's PER partial pairs of a previous pass.
fn merge_candidate(lid: u32, group: u32) -> Candidate {
    let e = element(group, lid, 0u);
    var v = x[e];
    var i = idx[e];
    for (var k = 1u; k < PER; k = k + 1u) {
        let f = element(group, lid, k);
        let b = x[f];
        let j = idx[f];
        if beats(b, j, v, i) {
            v = b;
            i = j;
        }
    }
    return Candidate(v, i);
}

@compute @workgroup_size(64)
fn first(@builtin(local_invocation_index) lid: u32,
         @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group >= p.groups {
        return;
    }
    let c = first_candidate(lid, group);
    finish(lid, group, c.v, c.i, false);
}

@compute @workgroup_size(64)
fn merge(@builtin(local_invocation_index) lid: u32,
         @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group >= p.groups {
        return;
    }
    let c = merge_candidate(lid, group);
    finish(lid, group, c.v, c.i, false);
}

@compute @workgroup_size(64)
fn first_light(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group >= p.groups {
        return;
    }
    let c = first_candidate(lid, group);
    finish(lid, group, c.v, c.i, true);
}

@compute @workgroup_size(64)
fn merge_light(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group >= p.groups {
        return;
    }
    let c = merge_candidate(lid, group);
    finish(lid, group, c.v, c.i, true);
}
