// sort: LSD radix sorts of u32 keys (and u32 values), 4-bit digits, lowest
// first, in two forms.
//
// The multi-pass kernels: one pass per digit in tiles of 1,024 keys (one
// workgroup of 64 invocations, 16 keys each). The host runs, for each of the
// 8 digits:
//   `histogram`:     hist[d · tiles + t] = keys of tile t whose digit is d;
//   (the host scans hist, exclusively, with the scan kernels: digit-major
//    order makes offsets[d · tiles + t] the first output slot of tile t's
//    keys with digit d)
//   `scatter_keys` / `scatter_pairs`: each tile ranks its keys by digit in
//                    workgroup memory (a stable local sort), then writes them
//                    out in that order, so neighbouring invocations write
//                    neighbouring slots (coalesced).
// Passes alternate between two buffers; 8 passes leave the result where the
// keys started.
//
// The whole-sort kernels, `sort_keys` and `sort_pairs` (radix_sort and
// radix_sort_pairs as one kernel each): all 8 passes in a single dispatch of
// one workgroup. pel runs these kernels on the CPU, where the rayon
// implementation is the fast one; GPUs sort with the multi-pass kernels,
// which spread each pass over every core. These make the kernels whole
// (correct on any device, as a pel kernel must be), not fast: one workgroup
// walks the keys 64 at a time. Each pass counts the digit over all keys,
// turns the counts into each digit's first slot, then moves 64 keys at a
// time: a key goes after the keys of its digit already placed and those of
// its digit among the lanes before it. Passes alternate keys → tmp → keys,
// so 8 of them end in keys.
//
// Each form has its own bindings and uniform block.

const WG: u32 = 64u;      // invocations per workgroup
const RADIX: u32 = 16u;   // digit values
const ROW: u32 = 65u;     // counts row stride: WG plus one slot against bank conflicts
alias WgScan = u32;

// counts[d · ROW + i]: invocation i's keys with digit d (each invocation owns
// its column, so no atomics).
var<workgroup> counts: array<u32, 1040>;

fn digit_at(k: u32, shift: u32) -> u32 {
    return (k >> shift) & (RADIX - 1u);
}

fn clear_counts(lid: u32) {
    for (var d = 0u; d < RADIX; d = d + 1u) {
        counts[d * ROW + lid] = 0u;
    }
}

// ---- the multi-pass kernels

// `Params` is declared once, in Rust (`SortParams` in kernels/src/sort/mod.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> src_vals: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<u32>;
@group(0) @binding(3) var<storage, read> offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;
@group(0) @binding(5) var<storage, read_write> dst_vals: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

const PER: u32 = 16u;     // keys per invocation
const TILE: u32 = 1024u;  // WG · PER keys per workgroup

// The tile's keys (and values), one padding slot per 16 so that invocation i
// reads its keys 16i..16i+15 without bank conflicts.
var<workgroup> keys_sh: array<u32, 1088>;
var<workgroup> vals_sh: array<u32, 1088>;
// The 64 invocations' sums of 16 counts each.
var<workgroup> rake_sums: array<u32, 64>;
// Per digit: the global slot of the tile's first key with that digit, less
// that key's slot in the tile's sorted order.
var<workgroup> base: array<u32, 16>;

// Per invocation: its keys, and each one's rank among the tile's keys.
var<private> key: array<u32, 16>;
var<private> pos: array<u32, 16>;

fn kpad(i: u32) -> u32 {
    return i + (i >> 4u);
}

fn digit(k: u32) -> u32 {
    return digit_at(k, p.shift);
}

// Keys in tile `tile`: at most TILE, fewer in the last.
fn tile_keys(tile: u32) -> u32 {
    return min(TILE, p.n - min(tile * TILE, p.n));
}

// The sum of entries 16·lid .. 16·lid + 15 of counts in digit-major order
// (digit lid / 4, columns 16·(lid % 4) ..).
fn rake_start(lid: u32) -> u32 {
    return (lid / 4u) * ROW + (lid % 4u) * 16u;
}

fn rake_sum(lid: u32) -> u32 {
    let r = rake_start(lid);
    var s = 0u;
    for (var c = 0u; c < 16u; c = c + 1u) {
        s = s + counts[r + c];
    }
    return s;
}

// Workgroups are numbered linearly (pel folds more than 65,535 of them into
// 2-D); a whole spare group leaves together.
@compute @workgroup_size(64)
fn histogram(@builtin(local_invocation_index) lid: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nw: vec3<u32>) {
    let tile = pel_workgroup_index(wid, nw);
    if tile >= p.tiles {
        return;
    }
    let start = tile * TILE;
    let m = tile_keys(tile);
    clear_counts(lid);
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid; // coalesced
        if i < m {
            let c = digit(src[start + i]) * ROW + lid;
            counts[c] = counts[c] + 1u;
        }
    }
    workgroupBarrier();
    rake_sums[lid] = rake_sum(lid);
    workgroupBarrier();
    if lid < RADIX {
        let q = lid * 4u;
        hist[lid * p.tiles + tile] =
            rake_sums[q] + rake_sums[q + 1u] + rake_sums[q + 2u] + rake_sums[q + 3u];
    }
}

// Loads tile `tile` (m keys) into keys_sh; the rank that follows makes
// them visible.
fn load_tile(lid: u32, tile: u32, m: u32) {
    let start = tile * TILE;
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid; // coalesced
        var k = 0u;
        if i < m {
            k = src[start + i];
        }
        keys_sh[kpad(i)] = k;
    }
}

// Ranks the tile's m keys in keys_sh by their 4-bit digit at `shift`: on
// return, key[j] and pos[j] hold this invocation's keys 16·lid + j (those
// below m) and their slots in the tile's stable order by that digit, and
// counts[d · ROW] is the slot of the tile's first key with digit d. Every
// read of keys_sh is done before it returns (the caller may overwrite it).
fn rank_by(lid: u32, m: u32, shift: u32) {
    clear_counts(lid);
    workgroupBarrier();

    // Each invocation counts its 16 consecutive keys, in order: a key's rank
    // among its invocation's keys of the same digit is the count before it.
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = lid * PER + j;
        let k = keys_sh[kpad(i)];
        key[j] = k;
        pos[j] = 0u;
        if i < m {
            let c = digit_at(k, shift) * ROW + lid;
            pos[j] = counts[c];
            counts[c] = counts[c] + 1u;
        }
    }
    workgroupBarrier();

    // Exclusive scan of counts in digit-major order: each invocation sums 16
    // entries, the 64 sums are scanned (6 steps), then each invocation
    // rewrites its 16 entries as running totals.
    let r = rake_start(lid);
    var run = workgroup_exclusive_scan(lid, rake_sum(lid));
    for (var c = 0u; c < 16u; c = c + 1u) {
        let v = counts[r + c];
        counts[r + c] = run;
        run = run + v;
    }
    workgroupBarrier();

    // counts[d · ROW + i] is now the tile slot of invocation i's first key
    // with digit d.
    for (var j = 0u; j < PER; j = j + 1u) {
        if lid * PER + j < m {
            pos[j] = pos[j] + counts[digit_at(key[j], shift) * ROW + lid];
        }
    }
    workgroupBarrier();
}

// Loads tile `tile` and ranks it by the pass's digit; base[d] then maps a
// slot of digit d to its global slot (visible after the caller's next
// barrier).
fn rank(lid: u32, tile: u32, m: u32) {
    load_tile(lid, tile, m);
    rank_by(lid, m, p.shift);
    if lid < RADIX {
        base[lid] = offsets[lid * p.tiles + tile] - counts[lid * ROW];
    }
}

// Writes this invocation's ranked keys into keys_sh in the tile's order.
fn place_keys(lid: u32, m: u32) {
    for (var j = 0u; j < PER; j = j + 1u) {
        if lid * PER + j < m {
            keys_sh[kpad(pos[j])] = key[j];
        }
    }
}

// Slot i of the sorted tile goes to base[digit] + i: a digit's keys are
// consecutive both in the tile and in the output. Returns that slot.
fn write_key(i: u32) -> u32 {
    let k = keys_sh[kpad(i)];
    let slot = base[digit(k)] + i;
    dst[slot] = k;
    return slot;
}

@compute @workgroup_size(64)
fn scatter_keys(@builtin(local_invocation_index) lid: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nw: vec3<u32>) {
    let tile = pel_workgroup_index(wid, nw);
    if tile >= p.tiles {
        return;
    }
    let m = tile_keys(tile);
    rank(lid, tile, m);
    place_keys(lid, m);
    workgroupBarrier();
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid;
        if i < m {
            write_key(i);
        }
    }
}

// Loads tile `tile`'s values (m of them) into vals_sh; the rank that
// follows makes them visible.
fn load_vals(lid: u32, tile: u32, m: u32) {
    let start = tile * TILE;
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid; // coalesced
        var v = 0u;
        if i < m {
            v = src_vals[start + i];
        }
        vals_sh[kpad(i)] = v;
    }
}

// After a rank: moves this invocation's keys and their values in keys_sh
// and vals_sh to their ranked slots.
fn place_pairs(lid: u32, m: u32) {
    var val: array<u32, 16>;
    for (var j = 0u; j < PER; j = j + 1u) {
        val[j] = vals_sh[kpad(lid * PER + j)];
    }
    workgroupBarrier();
    place_keys(lid, m);
    for (var j = 0u; j < PER; j = j + 1u) {
        if lid * PER + j < m {
            vals_sh[kpad(pos[j])] = val[j];
        }
    }
}

@compute @workgroup_size(64)
fn scatter_pairs(@builtin(local_invocation_index) lid: u32,
                 @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nw: vec3<u32>) {
    let tile = pel_workgroup_index(wid, nw);
    if tile >= p.tiles {
        return;
    }
    let m = tile_keys(tile);
    load_vals(lid, tile, m);
    rank(lid, tile, m);
    place_pairs(lid, m);
    workgroupBarrier();
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid;
        if i < m {
            dst_vals[write_key(i)] = vals_sh[kpad(i)];
        }
    }
}

// ---- the wide passes: 8-bit digits, 4 passes instead of 8

// hist[d · tiles + t] for d below 256, then offsets likewise; the params'
// shift is 0, 8, 16 or 24. A tile is ranked by its 8-bit digit as two
// stable 4-bit ranks in workgroup memory (the low half, then the high),
// which leaves it sorted by the whole digit.

const WIDE: u32 = 256u;   // digit values of a wide pass

// Per digit: the tile's keys (histogram), then the global slot of the
// tile's first key with that digit less its slot in the tile (scatter).
var<workgroup> wide_counts: array<atomic<u32>, 256>;
var<workgroup> wide_base: array<u32, 256>;

fn wide_digit(k: u32) -> u32 {
    return (k >> p.shift) & (WIDE - 1u);
}

@compute @workgroup_size(64)
fn histogram_wide(@builtin(local_invocation_index) lid: u32,
                  @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nw: vec3<u32>) {
    let tile = pel_workgroup_index(wid, nw);
    if tile >= p.tiles {
        return;
    }
    let start = tile * TILE;
    let m = tile_keys(tile);
    for (var d = lid; d < WIDE; d = d + WG) {
        atomicStore(&wide_counts[d], 0u);
    }
    workgroupBarrier();
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid; // coalesced
        if i < m {
            atomicAdd(&wide_counts[wide_digit(src[start + i])], 1u);
        }
    }
    workgroupBarrier();
    for (var d = lid; d < WIDE; d = d + WG) {
        hist[d * p.tiles + tile] = atomicLoad(&wide_counts[d]);
    }
}

// After the tile is sorted by its wide digit in keys_sh: where each digit's
// run starts there, as wide_base (visible after the caller's barrier).
fn wide_bases(lid: u32, tile: u32, m: u32) {
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = lid * PER + j;
        if i < m {
            let d = wide_digit(keys_sh[kpad(i)]);
            if i == 0u || wide_digit(keys_sh[kpad(i - 1u)]) != d {
                wide_base[d] = offsets[d * p.tiles + tile] - i;
            }
        }
    }
}

// Slot i of the tile sorted by its wide digit goes to wide_base[digit] + i.
fn write_wide(i: u32) -> u32 {
    let k = keys_sh[kpad(i)];
    let slot = wide_base[wide_digit(k)] + i;
    dst[slot] = k;
    return slot;
}

// The keys' and the pairs' entries differ in what they bind: each ranks
// its tile twice (each half of the wide digit) and sets wide_base itself.

@compute @workgroup_size(64)
fn scatter_keys_wide(@builtin(local_invocation_index) lid: u32,
                     @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nw: vec3<u32>) {
    let tile = pel_workgroup_index(wid, nw);
    if tile >= p.tiles {
        return;
    }
    let m = tile_keys(tile);
    load_tile(lid, tile, m);
    for (var half = 0u; half < 8u; half = half + 4u) {
        rank_by(lid, m, p.shift + half);
        place_keys(lid, m);
    }
    workgroupBarrier();
    wide_bases(lid, tile, m);
    workgroupBarrier();
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid;
        if i < m {
            write_wide(i);
        }
    }
}

@compute @workgroup_size(64)
fn scatter_pairs_wide(@builtin(local_invocation_index) lid: u32,
                      @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nw: vec3<u32>) {
    let tile = pel_workgroup_index(wid, nw);
    if tile >= p.tiles {
        return;
    }
    let m = tile_keys(tile);
    load_vals(lid, tile, m);
    load_tile(lid, tile, m);
    for (var half = 0u; half < 8u; half = half + 4u) {
        rank_by(lid, m, p.shift + half);
        place_pairs(lid, m);
    }
    workgroupBarrier();
    wide_bases(lid, tile, m);
    workgroupBarrier();
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid;
        if i < m {
            dst_vals[write_wide(i)] = vals_sh[kpad(i)];
        }
    }
}

// ---- the whole-sort kernels

// `WholeParams` is declared once, in Rust (`WholeSortParams` in kernels/src/sort/mod.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(7) var<storage, read_write> keys: array<u32>;
@group(0) @binding(8) var<storage, read_write> tmp: array<u32>;
@group(0) @binding(9) var<storage, read_write> vals: array<u32>;
@group(0) @binding(10) var<storage, read_write> tmp_vals: array<u32>;
@group(0) @binding(11) var<uniform> wp: WholeParams;

const PASSES: u32 = 8u;
const NONE: u32 = 16u; // the digit of a lane past the end
const NO_SLOT: u32 = 0xffffffffu;

// The next free slot of each digit.
var<workgroup> next: array<u32, 16>;
// The digits of the 64 keys in hand.
var<workgroup> lane_digit: array<u32, 64>;

fn load_key(pass_no: u32, i: u32) -> u32 {
    if (pass_no & 1u) == 0u {
        return keys[i];
    }
    return tmp[i];
}

fn store_key(pass_no: u32, i: u32, k: u32) {
    if (pass_no & 1u) == 0u {
        tmp[i] = k;
    } else {
        keys[i] = k;
    }
}

fn move_val(pass_no: u32, at: u32, slot: u32) {
    if (pass_no & 1u) == 0u {
        tmp_vals[slot] = vals[at];
    } else {
        vals[slot] = tmp_vals[at];
    }
}

// Sets next[d] to the first slot of digit d in this pass's output.
fn digit_starts(lid: u32, pass_no: u32) {
    clear_counts(lid);
    for (var i = lid; i < wp.n; i = i + WG) {
        let c = digit_at(load_key(pass_no, i), 4u * pass_no) * ROW + lid;
        counts[c] = counts[c] + 1u;
    }
    workgroupBarrier();
    if lid == 0u {
        var run = 0u;
        for (var d = 0u; d < RADIX; d = d + 1u) {
            next[d] = run;
            for (var c = 0u; c < WG; c = c + 1u) {
                run = run + counts[d * ROW + c];
            }
        }
    }
    workgroupBarrier();
}

// The slot of this lane's key among the 64 in hand (NONE past the end),
// then, once every lane has its slot, advances next[] past the 64.
fn place(lid: u32, d: u32) -> u32 {
    lane_digit[lid] = d;
    workgroupBarrier();
    var slot = NONE;
    if d != NONE {
        var r = 0u;
        for (var j = 0u; j < lid; j = j + 1u) {
            r = r + select(0u, 1u, lane_digit[j] == d);
        }
        slot = next[d] + r;
    }
    workgroupBarrier();
    if lid < RADIX {
        var c = 0u;
        for (var j = 0u; j < WG; j = j + 1u) {
            c = c + select(0u, 1u, lane_digit[j] == lid);
        }
        next[lid] = next[lid] + c;
    }
    workgroupBarrier();
    return slot;
}

// Moves key i of this pass (if i < n) to its slot in the pass's output; the
// slot, or NO_SLOT past the end. Every lane calls it (it has barriers).
fn move_key(lid: u32, pass_no: u32, i: u32) -> u32 {
    var k = 0u;
    var d = NONE;
    if i < wp.n {
        k = load_key(pass_no, i);
        d = digit_at(k, 4u * pass_no);
    }
    let slot = place(lid, d);
    if d == NONE {
        return NO_SLOT;
    }
    store_key(pass_no, slot, k);
    return slot;
}

@compute @workgroup_size(64)
fn sort_keys(@builtin(local_invocation_index) lid: u32) {
    for (var pass_no = 0u; pass_no < PASSES; pass_no = pass_no + 1u) {
        digit_starts(lid, pass_no);
        for (var first = 0u; first < wp.n; first = first + WG) {
            move_key(lid, pass_no, first + lid);
        }
        // This pass's output is the next one's input.
        storageBarrier();
    }
}

@compute @workgroup_size(64)
fn sort_pairs(@builtin(local_invocation_index) lid: u32) {
    for (var pass_no = 0u; pass_no < PASSES; pass_no = pass_no + 1u) {
        digit_starts(lid, pass_no);
        for (var first = 0u; first < wp.n; first = first + WG) {
            let slot = move_key(lid, pass_no, first + lid);
            if slot != NO_SLOT {
                move_val(pass_no, first + lid, slot);
            }
        }
        storageBarrier();
    }
}
