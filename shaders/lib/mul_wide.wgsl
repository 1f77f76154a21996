
// ---- shared by pel-kernels (shaders/lib/mul_wide.wgsl), appended after
// ---- the shader's own lines.

// a·b as (low word, high word), from four 16×16-bit products (none
// overflows): WGSL has no 64-bit integers. A caller that takes only `.y`
// leaves the low word to the compiler to drop.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let lo = (p00 & 0xffffu) | (mid << 16u);
    let hi = a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(lo, hi);
}
