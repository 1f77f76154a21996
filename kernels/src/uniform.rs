//! A kernel's uniform params block, declared once for both languages.
//!
//! Every kernel passes its scalar parameters to its shader as one uniform
//! block: a `#[repr(C)]` struct in Rust and a struct of the same fields in
//! WGSL. Written twice, the two can drift apart: the runtime checks that
//! their sizes agree, but two fields of one type swapped in either language
//! keep the size and silently swap the values. [`wgsl_struct!`] declares the
//! Rust struct and makes a macro that expands to its WGSL twin, field for
//! field and in order, which the kernel appends to its shader source. The
//! shader files therefore use their params structs without declaring them.
//!
//! WGSL allows a module's declarations in any order, so appending the
//! struct keeps naga's line numbers the lines of the shader file.

/// A Rust scalar that a WGSL uniform block can hold, with its WGSL name.
///
/// Only 4-byte scalars: with them the `#[repr(C)]` layout and WGSL's
/// uniform layout agree field for field without any padding rules.
pub(crate) trait WgslScalar: bytemuck::Pod {
    /// The type's name in WGSL.
    const WGSL: &'static str;
}

impl WgslScalar for u32 {
    const WGSL: &'static str = "u32";
}

impl WgslScalar for i32 {
    const WGSL: &'static str = "i32";
}

impl WgslScalar for f32 {
    const WGSL: &'static str = "f32";
}

/// Declares a uniform params struct and its WGSL twin:
///
/// ```ignore
/// wgsl_struct! {
///     saxpy_params => Params;
///     /// The shader's uniform block.
///     #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
///     pub struct SaxpyParams {
///         /// The scale `a`.
///         pub a: f32,
///         /// Elements.
///         pub n: u32,
///     }
/// }
///
/// pub const WGSL: &str = concat!(include_str!("saxpy.wgsl"), saxpy_params!());
/// ```
///
/// declares `SaxpyParams` (with `#[repr(C)]` added) and a macro
/// `saxpy_params!()` that expands to the string `struct Params { a: f32,
/// n: u32, }`, for `concat!`. Every field's type must be a [`WgslScalar`];
/// any other type does not compile. Padding is written as fields of its own
/// (`_pad0: u32`, …), so that both sides see it.
macro_rules! wgsl_struct {
    (
        $wgsl:ident => $wgsl_name:ident;
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            $( $(#[$field_meta])* $field_vis $field: $ty ),*
        }

        // Every field is a scalar WGSL knows by the same name.
        const _: () = {
            $( let _ = <$ty as $crate::uniform::WgslScalar>::WGSL; )*
        };

        macro_rules! $wgsl {
            () => {
                concat!(
                    "\n// ---- `", stringify!($wgsl_name), "`: declared in Rust as `",
                    stringify!($name), "` (pel-kernels), appended here.\nstruct ",
                    stringify!($wgsl_name), " {\n",
                    $( "    ", stringify!($field), ": ", stringify!($ty), ",\n", )*
                    "}\n"
                )
            };
        }
    };
}

pub(crate) use wgsl_struct;

#[cfg(test)]
mod tests {
    wgsl_struct! {
        example => Example;
        /// A block of each scalar type.
        #[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct ExampleParams {
            /// An unsigned field.
            n: u32,
            /// A float field.
            scale: f32,
            /// A signed field.
            offset: i32,
            /// Padding.
            _pad0: u32,
        }
    }

    #[test]
    fn the_wgsl_twin_has_the_fields_in_order() {
        let wgsl = example!();
        let body = wgsl.split_once("struct Example {\n").unwrap().1;
        assert_eq!(
            body,
            "    n: u32,\n    scale: f32,\n    offset: i32,\n    _pad0: u32,\n}\n"
        );
    }

    #[test]
    fn the_runtime_accepts_the_twin_as_the_params_block() {
        // The runtime reflects the shader and checks the uniform block's
        // size against the Rust type's.
        let source = format!(
            "@group(0) @binding(0) var<uniform> p: Example;\n\
             @group(0) @binding(1) var<storage, read_write> out: array<f32>;\n\
             @compute @workgroup_size(1) fn main() {{ out[0] = p.scale; }}\n{}",
            example!()
        );
        let kernel = pel_runtime::Kernel::builder("example", source)
            .params::<ExampleParams>()
            .build();
        assert!(kernel.is_ok(), "{:?}", kernel.err());
    }
}
