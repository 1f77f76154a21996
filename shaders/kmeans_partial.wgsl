// k-means, update, first pass: each workgroup sums the points of one chunk
// of `chunk` consecutive points per cluster. Its output row holds, for each
// cluster c, the d coordinate sums then the count (as f32, exact below 2²⁴):
// m = k·(d + 1) values at partial[group·m + c·(d + 1) + j].
//
// WGSL has no f32 atomics, so no invocation adds into a shared total.
// Instead each invocation owns one output value and scans the chunk's
// labels, staged 256 at a time through workgroup memory (a coalesced load,
// then broadcast reads), adding the coordinate of every point of its
// cluster. When m < 256, the workgroup splits into 256/m lanes that scan
// interleaved points, and the lanes' sums are added at the end; when
// m > 256, the outputs are taken 256 at a time.
//
// Workgroups are numbered linearly (pel folds more than 65,535 of them into
// 2-D).

struct Params {
    n: u32,
    d: u32,
    k: u32,
    // Values per output row: k·(d + 1).
    m: u32,
    // Points per workgroup.
    chunk: u32,
    // Workgroups (rows of `partial`): ceil(n / chunk).
    groups: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> points: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

var<workgroup> staged: array<u32, 256>;
var<workgroup> lane_sums: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    // Uniform across the workgroup: the whole group leaves together.
    if group >= p.groups {
        return;
    }
    let first = group * p.chunk;
    let last = min(first + p.chunk, p.n);
    let dd = p.d + 1u;
    // `width` outputs at a time, each scanned by `lanes` invocations.
    let width = min(p.m, WG);
    let lanes = WG / width;
    let lane = lid / width;
    let slot = lid % width;

    for (var o0 = 0u; o0 < p.m; o0 = o0 + width) {
        let o = o0 + slot;
        let scans = lane < lanes && o < p.m;
        let c = o / dd;
        let j = o % dd;
        var acc = 0.0;
        for (var t0 = first; t0 < last; t0 = t0 + WG) {
            let i = t0 + lid;
            var label = NONE;
            if i < last {
                label = labels[i];
            }
            staged[lid] = label;
            workgroupBarrier();
            if scans {
                let count = min(WG, last - t0);
                for (var q = lane; q < count; q = q + lanes) {
                    if staged[q] == c {
                        if j < p.d {
                            acc = acc + points[(t0 + q) * p.d + j];
                        } else {
                            acc = acc + 1.0;
                        }
                    }
                }
            }
            // The labels are read by everyone before they are overwritten.
            workgroupBarrier();
        }
        lane_sums[lid] = acc;
        workgroupBarrier();
        if lane == 0u && o < p.m {
            var s = acc;
            for (var l = 1u; l < lanes; l = l + 1u) {
                s = s + lane_sums[l * width + slot];
            }
            partial[group * p.m + o] = s;
        }
        workgroupBarrier();
    }
}
