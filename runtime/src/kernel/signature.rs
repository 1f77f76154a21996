//! The typed view a CPU implementation gets of its arguments.
//!
//! A CPU implementation names its argument list as a tuple type, such as
//! `(Read<f32>, ReadWrite<f32>)`. The builder compares that list with the
//! shader's storage bindings when the kernel is built, so a mismatch is found
//! once, before anything runs; at run time the closure receives plain slices.

use std::fmt;
use std::marker::PhantomData;

use super::reflect::Reflection;
use crate::error::{Error, Result};

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

    /// The bytes one element takes in a WGSL storage array: 4 per lane
    /// (every [`Scalar`] is 4 bytes), or the struct's size.
    ///
    /// # Examples
    ///
    /// ```
    /// use pel_runtime::{ElemType, Scalar};
    ///
    /// assert_eq!(ElemType::scalar(Scalar::F32).size(), 4);
    /// assert_eq!(ElemType::Vector { scalar: Scalar::U32, lanes: 4 }.size(), 16);
    /// assert_eq!(ElemType::Struct { size: 48 }.size(), 48);
    /// ```
    pub const fn size(&self) -> u32 {
        match *self {
            ElemType::Vector { lanes, .. } => 4 * lanes as u32,
            ElemType::Struct { size } => size,
        }
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
///
/// # What an implementation must satisfy
///
/// A CPU implementation receives a buffer's bytes as a slice of the element
/// type its kernel declares, which need not be the type the buffer was made
/// from: only their [`TYPE`](Element::TYPE)s are compared. So `TYPE` must
/// describe the Rust type's memory exactly:
///
/// - `size_of::<Self>() == Self::TYPE.size()`: one Rust value is one
///   element of the WGSL array, stride included. For a struct, `size` is
///   its `size_of`, and its fields sit where WGSL puts them (add explicit
///   padding fields where WGSL aligns a member, e.g. before a `vec4`).
/// - `align_of::<Self>() <= 16`: pel keeps host copies 16-byte aligned.
///
/// Both are checked when the program is compiled, wherever a type enters
/// pel's memory ([`Runtime::buffer`](crate::Runtime::buffer),
/// [`Runtime::zeros`](crate::Runtime::zeros), [`Read`], [`ReadWrite`]), and
/// the element size again when a buffer is passed to a kernel. A wrong
/// `TYPE` is therefore a compile error, never a slice that runs past its
/// buffer; the trait is safe to implement (`bytemuck::Pod` already
/// guarantees that any bytes are a valid value).
///
/// # Examples
///
/// A struct element, as `struct Particle { pos: vec2<f32>, vel: vec2<f32> }`
/// in WGSL:
///
/// ```
/// use pel_runtime::{ElemType, Element, Runtime};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct Particle { pos: [f32; 2], vel: [f32; 2] }
///
/// impl Element for Particle {
///     const TYPE: ElemType = ElemType::Struct { size: 16 };
/// }
///
/// let rt = Runtime::builder().gpu(false).persist_model(false).build()?;
/// let p = rt.buffer(&[Particle { pos: [0.0; 2], vel: [1.0; 2] }; 8]);
/// assert_eq!(p.size_bytes(), 8 * 16);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
///
/// Two 16-bit halves packed in one `u32`, as WGSL's `unpack2x16float`
/// reads them: 4 bytes, so `u32` describes it.
///
/// ```
/// use pel_runtime::{ElemType, Element, Runtime, Scalar};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct HalfPair([u16; 2]);
///
/// impl Element for HalfPair {
///     const TYPE: ElemType = ElemType::scalar(Scalar::U32);
/// }
///
/// let rt = Runtime::builder().gpu(false).persist_model(false).build()?;
/// let h = rt.buffer(&[HalfPair([7, 7]); 1000]);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
///
/// One 16-bit value claiming to be a `u32` is refused when compiled: a
/// kernel taking `&mut [u32]` would otherwise see 4,000 bytes of a
/// 2,000-byte buffer.
///
/// ```compile_fail,E0080
/// use pel_runtime::{ElemType, Element, Runtime, Scalar};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct Half(u16);
///
/// impl Element for Half {
///     const TYPE: ElemType = ElemType::scalar(Scalar::U32);
/// }
///
/// let rt = Runtime::builder().gpu(false).persist_model(false).build()?;
/// let h = rt.buffer(&[Half(7); 1000]);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
///
/// So is such a type as a CPU implementation's argument:
///
/// ```compile_fail,E0080
/// use pel_runtime::{ElemType, Element, Kernel, ReadWrite, Scalar};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct Half(u16);
///
/// impl Element for Half {
///     const TYPE: ElemType = ElemType::scalar(Scalar::U32);
/// }
///
/// let k = Kernel::builder("k", "").cpu::<(ReadWrite<Half>,)>(|_, _: &()| {});
/// ```
pub trait Element: bytemuck::Pod + Send + Sync + 'static {
    /// The WGSL element type this Rust type stands for; its
    /// [`size`](ElemType::size) must be `size_of::<Self>()`.
    const TYPE: ElemType;
}

/// Refuses at compile time, where `T` enters pel's memory, an [`Element`]
/// whose `TYPE` does not describe its layout: the CPU path's slices are only
/// in bounds and aligned because this holds.
pub(crate) fn assert_element_layout<T: Element>() {
    const {
        assert!(
            std::mem::size_of::<T>() == T::TYPE.size() as usize && std::mem::align_of::<T>() <= 16,
            "an Element's size_of must equal its TYPE.size() (the bytes of one WGSL array element), and its align_of must be at most 16"
        )
    }
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

/// A host copy the runtime hands to a CPU implementation: its address, its
/// length in elements, and its length in bytes (so a binding can check the
/// element type it views it as, and a fault injection can write bytes).
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct RawSlice {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
    pub(crate) bytes: usize,
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
    /// `raw.ptr` must point to `raw.bytes` initialised bytes, aligned to 16,
    /// valid for `'a`, and (for a writable kind) not aliased. A `raw.bytes`
    /// that is not `raw.len` elements of this kind's type panics.
    unsafe fn bind<'a>(raw: RawSlice) -> Self::Ref<'a>;
}

impl<T: Element> ArgKind for Read<T> {
    type Ref<'a> = &'a [T];
    fn spec() -> ArgSpec {
        assert_element_layout::<T>();
        ArgSpec {
            elem: T::TYPE,
            access: Access::Read,
        }
    }
    unsafe fn bind<'a>(raw: RawSlice) -> &'a [T] {
        check_extent::<T>(raw);
        if raw.len == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees `raw.bytes` live, initialised bytes
        // aligned to 16 (the trait's contract), and `check_extent` has just
        // proved they are exactly `raw.len` values of `T`. `T` is Pod (any
        // bytes are a value) and aligned to at most 16 (checked when
        // `spec` was compiled). No safe code can break that: the runtime
        // builds `raw` from its own 16-aligned host copies, sized from the
        // buffer's element size, held under the call's lease.
        unsafe { std::slice::from_raw_parts(raw.ptr as *const T, raw.len) }
    }
}

impl<T: Element> ArgKind for ReadWrite<T> {
    type Ref<'a> = &'a mut [T];
    fn spec() -> ArgSpec {
        assert_element_layout::<T>();
        ArgSpec {
            elem: T::TYPE,
            access: Access::ReadWrite,
        }
    }
    unsafe fn bind<'a>(raw: RawSlice) -> &'a mut [T] {
        check_extent::<T>(raw);
        if raw.len == 0 {
            return &mut [];
        }
        // SAFETY: in bounds, aligned and initialised as for `Read`. The
        // `&mut` is the only reference for `'a`: the caller guarantees no
        // aliasing, which the runtime upholds by refusing calls that pass a
        // written buffer twice and by holding the buffer's exclusive lease
        // until the CPU implementation returns.
        unsafe { std::slice::from_raw_parts_mut(raw.ptr as *mut T, raw.len) }
    }
}

/// Panics unless `raw` covers exactly `raw.len` values of `T`: the last
/// defence, after the compile-time layout check and the call's element-size
/// check, against viewing a buffer as a slice longer than its bytes.
fn check_extent<T>(raw: RawSlice) {
    assert!(
        raw.len.checked_mul(std::mem::size_of::<T>()) == Some(raw.bytes),
        "pel: a host copy of {} bytes cannot be {} elements of {} ({} bytes each)",
        raw.bytes,
        raw.len,
        std::any::type_name::<T>(),
        std::mem::size_of::<T>()
    );
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

/// Checks a CPU implementation's argument list against the shader's
/// bindings: count, element types and access.
pub(super) fn check(kernel: &str, reflection: &Reflection, specs: &[ArgSpec]) -> Result<()> {
    if specs.len() != reflection.storage.len() {
        return Err(Error::ArgCount {
            kernel: kernel.to_owned(),
            what: "the CPU implementation",
            expected: reflection.storage.len(),
            got: specs.len(),
        });
    }
    for (index, (spec, binding)) in specs.iter().zip(&reflection.storage).enumerate() {
        if spec.elem != binding.elem {
            return Err(Error::ArgType {
                kernel: kernel.to_owned(),
                index,
                name: binding.name.clone(),
                what: "the CPU implementation",
                expected: binding.elem.to_string(),
                got: spec.elem.to_string(),
            });
        }
        if spec.access != binding.access {
            return Err(Error::ArgAccess {
                kernel: kernel.to_owned(),
                index,
                name: binding.name.clone(),
                expected: binding.access.to_string(),
                got: spec.access.to_string(),
            });
        }
    }
    Ok(())
}
