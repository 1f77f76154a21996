//! The typed view a CPU implementation gets of its arguments.
//!
//! A CPU implementation names its argument list as a tuple type, such as
//! `(Read<f32>, ReadWrite<f32>)`. The builder compares that list with the
//! shader's storage bindings when the kernel is built, so a mismatch is found
//! once, before anything runs; at run time the closure receives plain slices.

use std::fmt;
use std::marker::PhantomData;

/// Scalar types WGSL storage arrays can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// `f32`
    F32,
    /// `u32` (also `atomic<u32>`)
    U32,
    /// `i32` (also `atomic<i32>`)
    I32,
}

/// The element type of a storage array, as WGSL sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElemType {
    /// A scalar, or a vector of 2 or 4 scalars (`lanes` 1, 2 or 4).
    Vector {
        /// The component type.
        scalar: Scalar,
        /// Number of components: 1 for a scalar.
        lanes: u8,
    },
    /// A struct, matched by its size in bytes.
    Struct {
        /// `size_of` the struct, as WGSL lays it out in an array.
        size: u32,
    },
}

impl ElemType {
    /// A scalar element.
    pub const fn scalar(scalar: Scalar) -> Self {
        ElemType::Vector { scalar, lanes: 1 }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |s: &Scalar| match s {
            Scalar::F32 => "f32",
            Scalar::U32 => "u32",
            Scalar::I32 => "i32",
        };
        match self {
            ElemType::Vector { scalar, lanes: 1 } => f.write_str(name(scalar)),
            ElemType::Vector { scalar, lanes } => write!(f, "vec{lanes}<{}>", name(scalar)),
            ElemType::Struct { size } => write!(f, "struct of {size} bytes"),
        }
    }
}

/// A Rust type that can be the element of a pel buffer.
///
/// Implemented for `f32`, `u32`, `i32` and their 2- and 4-lane arrays (WGSL's
/// `vec2`/`vec4`). Implement it for a `#[repr(C)]` struct of your own with
/// `ElemType::Struct { size }` to pass arrays of WGSL structs.
pub trait Element: bytemuck::Pod + Send + Sync + 'static {
    /// The WGSL element type this Rust type stands for.
    const TYPE: ElemType;
}

macro_rules! element {
    ($($t:ty => $s:ident, $lanes:literal;)*) => {$(
        impl Element for $t {
            const TYPE: ElemType = ElemType::Vector { scalar: Scalar::$s, lanes: $lanes };
        }
    )*};
}

element! {
    f32 => F32, 1; u32 => U32, 1; i32 => I32, 1;
    [f32; 2] => F32, 2; [u32; 2] => U32, 2; [i32; 2] => I32, 2;
    [f32; 4] => F32, 4; [u32; 4] => U32, 4; [i32; 4] => I32, 4;
}

/// How a kernel uses a storage argument, as its WGSL declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `var<storage, read>`: the kernel only reads it.
    Read,
    /// `var<storage, read_write>`: the kernel may write it.
    ReadWrite,
}

impl Access {
    /// Whether a kernel with this access may change the buffer.
    pub fn writes(self) -> bool {
        self == Access::ReadWrite
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::ReadWrite => "read_write",
        })
    }
}

/// One argument as the CPU implementation declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSpec {
    /// Its element type.
    pub elem: ElemType,
    /// Whether it is written.
    pub access: Access,
}

/// A storage argument the CPU implementation reads: it receives `&[T]`.
pub struct Read<T>(PhantomData<T>);

/// A storage argument the CPU implementation may write: it receives `&mut [T]`.
pub struct ReadWrite<T>(PhantomData<T>);

/// A pointer and element count the runtime hands to a CPU implementation.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct RawSlice {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
}

// SAFETY: a RawSlice is only an address handed to the CPU implementation on
// rayon's threads while its call holds the buffer's lease (shared to read,
// exclusive to write), so the runtime never hands a writable region to two
// calls at once, nor frees or rewrites it meanwhile.
unsafe impl Send for RawSlice {}
// SAFETY: as above; sharing the address is harmless, and dereferencing it is
// governed by `ArgKind::bind`'s contract.
unsafe impl Sync for RawSlice {}

/// One argument position of a [`Signature`]: [`Read`] or [`ReadWrite`].
pub trait ArgKind: 'static {
    /// The slice type the closure receives.
    type Ref<'a>;
    /// The declared element type and access.
    fn spec() -> ArgSpec;
    #[doc(hidden)]
    /// # Safety
    /// `raw` must point to `raw.len` initialised elements of this kind's type,
    /// aligned, valid for `'a`, and (for a writable kind) not aliased.
    unsafe fn bind<'a>(raw: RawSlice) -> Self::Ref<'a>;
}

impl<T: Element> ArgKind for Read<T> {
    type Ref<'a> = &'a [T];
    fn spec() -> ArgSpec {
        ArgSpec {
            elem: T::TYPE,
            access: Access::Read,
        }
    }
    unsafe fn bind<'a>(raw: RawSlice) -> &'a [T] {
        if raw.len == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees an aligned, initialised, live region of
        // `raw.len` elements of `T` (see the trait's contract).
        unsafe { std::slice::from_raw_parts(raw.ptr as *const T, raw.len) }
    }
}

impl<T: Element> ArgKind for ReadWrite<T> {
    type Ref<'a> = &'a mut [T];
    fn spec() -> ArgSpec {
        ArgSpec {
            elem: T::TYPE,
            access: Access::ReadWrite,
        }
    }
    unsafe fn bind<'a>(raw: RawSlice) -> &'a mut [T] {
        if raw.len == 0 {
            return &mut [];
        }
        // SAFETY: as for `Read`, and the runtime refuses calls that pass a
        // written buffer twice, so this `&mut` is the only reference.
        unsafe { std::slice::from_raw_parts_mut(raw.ptr as *mut T, raw.len) }
    }
}

/// The argument list of a CPU implementation: a tuple of [`Read`] and
/// [`ReadWrite`] (up to 8), or `()` for a kernel with no storage buffers.
pub trait Signature: 'static {
    /// The tuple of slices the closure receives.
    type Slices<'a>;
    /// The declared argument list, in order.
    fn specs() -> Vec<ArgSpec>;
    #[doc(hidden)]
    /// # Safety
    /// Each entry of `raw` must satisfy [`ArgKind::bind`]'s contract for its
    /// position, and `raw.len()` must equal `Self::specs().len()`.
    unsafe fn bind<'a>(raw: &[RawSlice]) -> Self::Slices<'a>;
}

impl Signature for () {
    type Slices<'a> = ();
    fn specs() -> Vec<ArgSpec> {
        Vec::new()
    }
    unsafe fn bind<'a>(_raw: &[RawSlice]) -> Self::Slices<'a> {}
}

macro_rules! signature {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: ArgKind),+> Signature for ($($name,)+) {
            type Slices<'a> = ($($name::Ref<'a>,)+);
            fn specs() -> Vec<ArgSpec> {
                vec![$($name::spec()),+]
            }
            unsafe fn bind<'a>(raw: &[RawSlice]) -> Self::Slices<'a> {
                // SAFETY: forwarded from this function's own contract.
                unsafe { ($($name::bind(raw[$idx]),)+) }
            }
        }
    };
}

signature!(A 0);
signature!(A 0, B 1);
signature!(A 0, B 1, C 2);
signature!(A 0, B 1, C 2, D 3);
signature!(A 0, B 1, C 2, D 3, E 4);
signature!(A 0, B 1, C 2, D 3, E 4, F 5);
signature!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
signature!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// The arguments of one CPU call, typed by the kernel's [`Signature`].
///
/// Call [`split`](CpuArgs::split) to get the tuple of slices.
pub struct CpuArgs<'a, S: Signature> {
    raw: &'a [RawSlice],
    _sig: PhantomData<fn() -> S>,
}

impl<'a, S: Signature> CpuArgs<'a, S> {
    /// # Safety
    /// `raw` must satisfy [`Signature::bind`]'s contract for `S` for `'a`.
    pub(crate) unsafe fn new(raw: &'a [RawSlice]) -> Self {
        CpuArgs {
            raw,
            _sig: PhantomData,
        }
    }

    /// The arguments as a tuple of slices, in the shader's binding order.
    pub fn split(self) -> S::Slices<'a> {
        // SAFETY: `new`'s contract is exactly `bind`'s, for the same `'a`.
        unsafe { S::bind(self.raw) }
    }
}
