// scan: prefix sums in blocks of 256 elements, reduce-then-scan.
//
// Two entry points, run by the host in this order:
//   `reduce`: each workgroup sums its block of 256 elements into totals[block];
//   (the host scans the totals, exclusively, with these same two entry points,
//    recursively, until one block is left)
//   `scan`:   each workgroup scans its block in workgroup memory and adds the
//             block's offset (the exclusive scan of the totals), so every
//             element gets the sum of everything before it.
// x is read twice and y written once: 12 bytes per element for u32 and f32.
//
// The element type is the alias T: u32 here (wrapping addition, exact); the
// host builds the f32 kernels by replacing this one line.
alias T = u32;

// `Params` is declared once, in Rust (`ScanParams` in kernels/src/scan.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read_write> totals: array<T>;
@group(0) @binding(2) var<storage, read> offsets: array<T>;
@group(0) @binding(3) var<storage, read_write> y: array<T>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;     // invocations per workgroup
const PER: u32 = 4u;     // elements per invocation
const BLOCK: u32 = 256u; // WG · PER elements per workgroup

// The block, one padding slot per 32 values: invocation i reads elements
// 4i..4i+3 without bank conflicts.
var<workgroup> tile: array<T, 264>;
alias WgSum = T;
alias WgScan = T;

fn pad(i: u32) -> u32 {
    return i + (i >> 5u);
}

@compute @workgroup_size(64)
fn reduce(@builtin(local_invocation_index) lid: u32,
          @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nw: vec3<u32>) {
    // pel folds more than 65,535 workgroups into 2-D. Uniform across the
    // workgroup: a whole folded-in spare group leaves together.
    let block = pel_workgroup_index(wid, nw);
    if block >= p.blocks {
        return;
    }
    let base = block * BLOCK;
    var s = T(0);
    for (var k = 0u; k < PER; k = k + 1u) {
        let i = base + k * WG + lid; // coalesced
        if i < p.n {
            s = s + x[i];
        }
    }
    let total = workgroup_sum(lid, s);
    if lid == 0u {
        totals[block] = total;
    }
}

@compute @workgroup_size(64)
fn scan(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nw: vec3<u32>) {
    let block = pel_workgroup_index(wid, nw);
    if block >= p.blocks {
        return;
    }
    let base = block * BLOCK;

    // Coalesced load of the block into workgroup memory.
    for (var k = 0u; k < PER; k = k + 1u) {
        let j = k * WG + lid;
        var v = T(0);
        if base + j < p.n {
            v = x[base + j];
        }
        tile[pad(j)] = v;
    }
    workgroupBarrier();

    // Each invocation scans its 4 consecutive elements in registers.
    var local: array<T, 4>;
    var run = T(0);
    for (var k = 0u; k < PER; k = k + 1u) {
        let v = tile[pad(lid * PER + k)];
        let before = run;
        run = run + v;
        local[k] = select(before, run, p.inclusive != 0u);
    }

    // Exclusive scan of the 64 invocation totals (6 steps).
    let before = workgroup_exclusive_scan(lid, run);

    // Back through workgroup memory for a coalesced store. Every read of
    // `tile` above came before the barriers of the scan.
    for (var k = 0u; k < PER; k = k + 1u) {
        tile[pad(lid * PER + k)] = before + local[k];
    }
    workgroupBarrier();
    let offset = offsets[block];
    for (var k = 0u; k < PER; k = k + 1u) {
        let j = k * WG + lid;
        if base + j < p.n {
            y[base + j] = offset + tile[pad(j)];
        }
    }
}
