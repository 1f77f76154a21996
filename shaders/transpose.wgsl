// transpose: b (n×m) = aᵀ for a row-major m×n f32 matrix a.
//
// One workgroup of 16×16 invocations moves one 16×16 tile: it reads the tile
// row by row (consecutive invocations read consecutive addresses), stores it
// in workgroup memory, and writes it out transposed, again row by row, so
// both global accesses are coalesced. The tile is padded to 17 columns: the
// transposed reads then walk a stride of 17 words and hit different memory
// banks. Tiles are numbered linearly (pel folds more than 65,535 of them
// into 2-D); edge tiles are partial, so any m and n work.

// `Params` is declared once, in Rust (`TransposeParams` in kernels/src/transpose.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const TILE: u32 = 16u;
const PITCH: u32 = 17u; // TILE + 1: no bank conflicts on the transposed read
var<workgroup> tile: array<f32, 272>; // TILE · PITCH

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let t = pel_workgroup_index(wid, groups);
    // Uniform across the workgroup: the whole group leaves together.
    if t >= p.tiles {
        return;
    }
    let row0 = (t / p.tiles_n) * TILE;
    let col0 = (t % p.tiles_n) * TILE;

    let r = row0 + lid.y;
    let c = col0 + lid.x;
    if r < p.m && c < p.n {
        tile[lid.y * PITCH + lid.x] = a[r * p.n + c];
    }
    workgroupBarrier();
    // Row col0 + lid.y of b, column row0 + lid.x.
    let br = col0 + lid.y;
    let bc = row0 + lid.x;
    if br < p.n && bc < p.m {
        b[br * p.m + bc] = tile[lid.x * PITCH + lid.y];
    }
}
