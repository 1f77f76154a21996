// min and max, one pass: each workgroup reduces 256 consecutive elements to
// one partial result. An invocation first folds 4 elements, 64 apart (every
// load of the workgroup is coalesced), then the 64 values are halved in
// workgroup memory (6 steps). The host side runs passes until one value is
// left, so the data never leaves the GPU.
//
// NaNs are ignored: a partial is NaN only when all its elements are. NaN is
// recognised by its bits, since a shader compiler may assume `v != v` false.
// Past the end of the input an invocation reads the last element again: a
// repeated element changes neither the min nor the max, so no identity value
// (and no NaN constant) is needed.

struct Params {
    n: u32,
    groups: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 64u;
const PER: u32 = 4u;
const CHUNK: u32 = 256u; // WG · PER
var<workgroup> scratch: array<f32, 64>;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

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

fn load(i: u32) -> f32 {
    return x[min(i, p.n - 1u)];
}

fn reduce(lid: u32, group: u32, smaller: bool) {
    let base = group * CHUNK + lid;
    var v = load(base);
    for (var k = 1u; k < PER; k = k + 1u) {
        v = pick(v, load(base + k * WG), smaller);
    }
    scratch[lid] = v;
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

@compute @workgroup_size(64)
fn min_pass(@builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    // Uniform across the workgroup: the whole group leaves together.
    if group >= p.groups {
        return;
    }
    reduce(lid, group, true);
}

@compute @workgroup_size(64)
fn max_pass(@builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group >= p.groups {
        return;
    }
    reduce(lid, group, false);
}
