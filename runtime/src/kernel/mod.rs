//! A kernel: one WGSL compute entry point plus, optionally, a Rust
//! implementation of the same computation for the CPU. Built once; naga
//! checks the shader and the CPU signature against it before anything runs.
//! This module owns the kernel's definition only: where and how it runs
//! belongs to `dispatch/`.

mod prelude;
mod reflect;
mod signature;
mod variant;

use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

pub(crate) use prelude::WORKGROUP_OVERRIDES;
pub use reflect::{Reflection, StorageBinding, UniformBinding};
pub use signature::{
    Access, ArgKind, ArgSpec, CpuArgs, ElemType, Element, Read, ReadWrite, Scalar, Signature,
};
pub(crate) use signature::{RawSlice, assert_element_layout};
pub use variant::Variant;

use crate::error::{Error, Result};
use crate::hash::Fnv;

/// The size of a launch: how many workgroups the GPU runs. The CPU
/// implementation does not use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// This many invocations in all; rounded up to whole workgroups.
    Invocations(u64),
    /// This many workgroups, linearly numbered.
    Workgroups(u64),
}

type CpuFn = dyn Fn(&[RawSlice], &[u8]) + Send + Sync;
type GridFn = dyn Fn(&[u8], &[usize]) -> Grid + Send + Sync;
type CostFn = dyn Fn(&[u8], &[usize]) -> u64 + Send + Sync;
type WorkFn = dyn Fn(&[u8], &[usize]) -> (f64, f64) + Send + Sync;
type PartFn = dyn Fn(&[u8], u64, u64) -> Vec<u8> + Send + Sync;

/// How a splittable kernel's work divides (see [`KernelBuilder::splittable`]).
struct Split {
    items: Box<CostFn>,
    part: Box<PartFn>,
}

/// Params of at most this many bytes are decoded onto the stack; larger ones
/// onto the heap, since a worker thread's stack may be smaller than them.
const STACK_PARAMS: usize = 4096;

/// Decodes a call's params bytes as `P` and hands them to `f`.
///
/// A zero-sized `P` (a closure written for `()`) ignores the bytes, which
/// then belong to a params type given later. Large params are decoded into a
/// zeroed heap allocation, never through a stack temporary.
fn with_params<P: bytemuck::Pod, R>(bytes: &[u8], f: impl FnOnce(&P) -> R) -> R {
    let size = std::mem::size_of::<P>();
    if size == 0 {
        f(&P::zeroed())
    } else if let Ok(p) = bytemuck::try_from_bytes::<P>(bytes) {
        // Aligned already: no copy at all.
        f(p)
    } else if size <= STACK_PARAMS {
        f(&bytemuck::pod_read_unaligned::<P>(bytes))
    } else {
        let mut p: Box<P> = bytemuck::allocation::zeroed_box();
        bytemuck::bytes_of_mut(&mut *p).copy_from_slice(bytes);
        f(&p)
    }
}

/// The params type a builder closure was written for.
#[derive(Clone, Copy)]
struct ParamsType {
    id: TypeId,
    name: &'static str,
}

impl ParamsType {
    fn of<P: 'static>() -> Self {
        ParamsType {
            id: TypeId::of::<P>(),
            name: std::any::type_name::<P>(),
        }
    }
}

/// A closure given to the builder, type-erased, with the params type it was
/// written for and the builder call that gave it, so `build` can tell
/// whether it still fits the kernel's final params type.
struct Given<F> {
    value: F,
    written_for: ParamsType,
    call: &'static str,
}

impl<F> Given<F> {
    fn new<P: 'static>(call: &'static str, value: F) -> Self {
        Given {
            value,
            written_for: ParamsType::of::<P>(),
            call,
        }
    }

    /// The closure, if it fits params `P`: written for `P`, or for `()`
    /// where `unit_fits` (it cannot read params, so it runs ignoring them).
    fn fit<P: 'static>(self, kernel: &str, unit_fits: bool) -> Result<F> {
        let want = ParamsType::of::<P>();
        let unit = self.written_for.id == TypeId::of::<()>();
        if self.written_for.id == want.id || (unit && unit_fits) {
            return Ok(self.value);
        }
        let call = self.call;
        let why = if unit {
            format!(
                "its `part` closure returns `()` where the kernel needs {}",
                want.name
            )
        } else {
            "only a closure written for `()` carries over to later params".to_owned()
        };
        Err(Error::Params {
            kernel: kernel.to_owned(),
            message: format!(
                "`.{call}(...)` was written for params {}, but the last `.params::<{}>()` made the kernel's params {}; {why}: give `.params::<{}>()` before `.{call}(...)`",
                self.written_for.name, want.name, want.name, want.name
            ),
        })
    }
}

/// A compute kernel with a WGSL shader and, usually, a CPU implementation
/// (without one it runs on GPUs only; see [`Kernel::has_cpu`]).
///
/// Cheap to clone. Build one with [`Kernel::builder`].
///
/// # Indexing: `pel_index`
///
/// A GPU dispatches at most 65,535 workgroups in one dimension (the usual
/// `max_compute_workgroups_per_dimension`); pel folds a larger launch into a
/// 2-D grid of `groups.x × groups.y` workgroups. A shader that indexes by
/// `global_invocation_id.x` alone would then skip every row past the first,
/// so pel supplies WGSL functions whose index is right however the launch is
/// shaped. A shader that calls one gets them appended after its own code
/// (naga's line numbers stay the shader's own):
///
/// - `pel_index(id: vec3<u32>, groups: vec3<u32>) -> u32`: the invocation's
///   place in pel's linear numbering, from `@builtin(global_invocation_id)`
///   and `@builtin(num_workgroups)`. For `@workgroup_size(WG)` it is
///   `id.x + id.y * groups.x * WG`; for 2-D and 3-D workgroup sizes it still
///   counts each invocation once, up to the workgroups times their size.
///   Compare it with the element count, since the last workgroup (and the
///   last row of a folded grid) runs past it.
/// - `pel_workgroup_index(wid: vec3<u32>, groups: vec3<u32>) -> u32`: the
///   workgroup's linear number, from `@builtin(workgroup_id)`, for kernels
///   launched by [`KernelBuilder::workgroups`].
///
/// Names that begin with `pel_` are pel's: the prelude also declares the
/// overrides `pel_workgroup_x`, `pel_workgroup_y` and `pel_workgroup_z`,
/// which the GPU sets to the entry point's `@workgroup_size`, and
/// `pel_workgroup_invocations`, their product. A shader that
/// defines any of these names itself gets no prelude (it must then define
/// all it calls). [`Kernel::wgsl`] is the composed source.
///
/// A shader may unfold by hand instead (`id.x + id.y * groups.x * 64u`), as
/// long as it takes `@builtin(num_workgroups)`: pel refuses, with
/// [`Error::GridNotUnfolded`], a GPU launch it would have to fold for a
/// shader that does not take it, and automatic placement runs such a call
/// on the CPU.
///
/// # Examples
///
/// ```
/// use pel_runtime::{Kernel, Read, ReadWrite};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct Scale { factor: f32, n: u32 }
///
/// let kernel = Kernel::builder("scale", r#"
///     struct Scale { factor: f32, n: u32 }
///     @group(0) @binding(0) var<storage, read> x: array<f32>;
///     @group(0) @binding(1) var<storage, read_write> y: array<f32>;
///     @group(0) @binding(2) var<uniform> p: Scale;
///     @compute @workgroup_size(64)
///     fn main(@builtin(global_invocation_id) id: vec3<u32>,
///             @builtin(num_workgroups) groups: vec3<u32>) {
///         let i = pel_index(id, groups); // right past 65,535 workgroups
///         if i < p.n { y[i] = p.factor * x[i]; }
///     }
/// "#)
/// .params::<Scale>()
/// .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, p| {
///     let (x, y) = args.split();
///     for (y, x) in y.iter_mut().zip(x) {
///         *y = p.factor * x;
///     }
/// })
/// .build()?;
/// assert_eq!(kernel.reflection().storage.len(), 2);
/// assert!(kernel.reflection().prelude && kernel.reflection().unfolds_grid);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct Kernel {
    inner: Arc<KernelInner>,
}

struct KernelInner {
    /// Shared, so what names a running call (its frame) costs no copy.
    name: Arc<str>,
    source: String,
    /// `source` with pel's prelude appended where it calls it.
    wgsl: String,
    id: u64,
    reflection: Reflection,
    params_type: TypeId,
    params_type_name: &'static str,
    params_size: usize,
    /// `None`: built without `.cpu(...)`; the kernel runs on GPUs only.
    cpu: Option<Arc<CpuFn>>,
    grid: Arc<GridFn>,
    cost: Arc<CostFn>,
    work: Option<Arc<WorkFn>>,
    split: Option<Arc<Split>>,
    /// The kernel's other implementations (see [`Variant`]); none for a
    /// variant itself.
    variants: Vec<variant::Built>,
    /// Whether its shader runs on GPUs (a CPU variant's does not: it is
    /// the kernel's own, which the kernel itself runs).
    on_gpu: bool,
}

impl Kernel {
    /// Starts a kernel from its name and WGSL source. The entry point is
    /// `main` unless [`KernelBuilder::entry`] says otherwise.
    pub fn builder(name: impl Into<String>, wgsl: impl Into<String>) -> KernelBuilder<()> {
        KernelBuilder {
            name: name.into(),
            source: wgsl.into(),
            entry: "main".to_owned(),
            version: String::new(),
            cpu: None,
            grid: None,
            cost: None,
            work: None,
            split: None,
            variants: Vec::new(),
            _params: PhantomData,
        }
    }

    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The kernel's name, shared.
    pub(crate) fn shared_name(&self) -> Arc<str> {
        Arc::clone(&self.inner.name)
    }

    /// Identity of this kernel: a stable hash of its name, WGSL, entry point
    /// and CPU version string. A changed kernel gets a new identity.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The WGSL source, as given to [`Kernel::builder`].
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The WGSL pel compiles for a GPU: [`source`](Self::source), followed
    /// by pel's prelude where the shader calls `pel_index` or
    /// `pel_workgroup_index`. Its `pel_workgroup_x/y/z` overrides must be
    /// set to the entry point's workgroup size when a pipeline is made.
    pub fn wgsl(&self) -> &str {
        &self.inner.wgsl
    }

    /// What naga read from the shader.
    pub fn reflection(&self) -> &Reflection {
        &self.inner.reflection
    }

    pub(crate) fn check_params<P: 'static>(&self) -> Result<()> {
        if TypeId::of::<P>() != self.inner.params_type {
            return Err(Error::Params {
                kernel: self.name().to_owned(),
                message: format!(
                    "the call passes {}, but the kernel was built with .params::<{}>()",
                    std::any::type_name::<P>(),
                    self.inner.params_type_name
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn params_size(&self) -> usize {
        self.inner.params_size
    }

    /// Workgroups to launch for these params and argument lengths.
    pub(crate) fn workgroups(&self, params: &[u8], lens: &[usize]) -> u64 {
        match (self.inner.grid)(params, lens) {
            Grid::Workgroups(n) => n,
            Grid::Invocations(n) => n.div_ceil(self.inner.reflection.workgroup_invocations()),
        }
    }

    /// The problem size of a call, as the performance model measures it.
    pub(crate) fn cost(&self, params: &[u8], lens: &[usize]) -> u64 {
        (self.inner.cost)(params, lens)
    }

    /// A call's floating-point operations and bytes of memory traffic, as
    /// [`KernelBuilder::work`] states them (`None`: not stated), from its
    /// params' bytes and its arguments' lengths (elements). A roofline
    /// (see [`Times::Roofline`](crate::Times::Roofline)) times a call from
    /// them.
    pub fn work(&self, params: &[u8], lens: &[usize]) -> Option<(f64, f64)> {
        self.inner.work.as_ref().map(|w| w(params, lens))
    }

    /// Whether the kernel has a CPU implementation (was built with
    /// [`KernelBuilder::cpu`]); without one it runs on GPUs only.
    pub fn has_cpu(&self) -> bool {
        self.inner.cpu.is_some()
    }

    /// Runs the CPU implementation; [`Error::NoCpuImplementation`] for a
    /// kernel built without one.
    pub(crate) fn run_cpu(&self, args: &[RawSlice], params: &[u8]) -> Result<()> {
        let cpu = self
            .inner
            .cpu
            .as_ref()
            .ok_or_else(|| Error::NoCpuImplementation {
                kernel: self.name().to_owned(),
            })?;
        cpu(args, params);
        Ok(())
    }

    /// Whether the kernel was declared splittable between devices.
    pub fn is_splittable(&self) -> bool {
        self.inner.split.is_some()
    }

    /// The length of a splittable call's index range (`None`: not splittable).
    pub(crate) fn split_items(&self, params: &[u8], lens: &[usize]) -> Option<u64> {
        self.inner.split.as_ref().map(|s| (s.items)(params, lens))
    }

    /// The params of the part of a call that computes items `start..end`.
    pub(crate) fn split_params(&self, params: &[u8], start: u64, end: u64) -> Option<Vec<u8>> {
        self.inner
            .split
            .as_ref()
            .map(|s| (s.part)(params, start, end))
    }
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("name", &self.inner.name)
            .field("id", &format_args!("{:016x}", self.inner.id))
            .field("reflection", &self.inner.reflection)
            .finish()
    }
}

/// Builds a [`Kernel`]; see [`Kernel::builder`].
///
/// The calls may come in any order. A closure given before
/// [`params`](Self::params) is kept: one written for `()` runs ignoring the
/// params, and one written for another params type makes
/// [`build`](Self::build) fail with [`Error::Params`].
#[must_use = "a builder does nothing until .build()"]
pub struct KernelBuilder<P> {
    name: String,
    source: String,
    entry: String,
    version: String,
    cpu: Option<Given<(Vec<ArgSpec>, Box<CpuFn>)>>,
    grid: Option<Given<Box<GridFn>>>,
    cost: Option<Given<Box<CostFn>>>,
    work: Option<Given<Box<WorkFn>>>,
    split: Option<Given<Split>>,
    variants: Vec<Given<variant::Spec>>,
    _params: PhantomData<fn() -> P>,
}

impl<P: bytemuck::Pod + Send + Sync> KernelBuilder<P> {
    /// The compute entry point to use (default `main`).
    pub fn entry(mut self, entry: impl Into<String>) -> Self {
        self.entry = entry.into();
        self
    }

    /// A version string for the CPU implementation. Changing it changes the
    /// kernel's [`id`](Kernel::id), so measurements of the old code are not
    /// reused for the new.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The Rust type of the shader's uniform params block; its size is checked
    /// against the WGSL. The closures of [`cpu`](Self::cpu),
    /// [`invocations`](Self::invocations), [`workgroups`](Self::workgroups),
    /// [`cost`](Self::cost) and [`splittable`](Self::splittable) receive
    /// `&Q`, so give it before them; a closure given earlier is kept if it
    /// was written for `()` (it runs ignoring the params), and is an
    /// [`Error::Params`] at [`build`](Self::build) otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use pel_runtime::{Kernel, ReadWrite};
    ///
    /// #[repr(C)]
    /// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// struct Fill { value: u32 }
    ///
    /// let wgsl = r#"
    ///     struct Fill { value: u32 }
    ///     @group(0) @binding(0) var<storage, read_write> y: array<u32>;
    ///     @group(0) @binding(1) var<uniform> p: Fill;
    ///     @compute @workgroup_size(64)
    ///     fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    ///         if id.x < arrayLength(&y) { y[id.x] = p.value; }
    ///     }"#;
    /// // A cost written for `()` before `.params()` carries over.
    /// let fill = Kernel::builder("fill", wgsl)
    ///     .cost(|_: &(), lens| lens[0] as u64)
    ///     .params::<Fill>()
    ///     .cpu::<(ReadWrite<u32>,)>(|args, p| args.split().0.fill(p.value))
    ///     .build()?;
    /// assert!(fill.has_cpu());
    /// # Ok::<(), pel_runtime::Error>(())
    /// ```
    pub fn params<Q: bytemuck::Pod + Send + Sync>(self) -> KernelBuilder<Q> {
        KernelBuilder {
            name: self.name,
            source: self.source,
            entry: self.entry,
            version: self.version,
            cpu: self.cpu,
            grid: self.grid,
            cost: self.cost,
            work: self.work,
            split: self.split,
            variants: self.variants,
            _params: PhantomData,
        }
    }

    /// The CPU implementation. `S` is its argument list, e.g.
    /// `(Read<f32>, ReadWrite<f32>)`, in the shader's binding order; the
    /// closure receives the slices through [`CpuArgs::split`] and the params.
    /// Its `par_iter`s run on rayon's global pool, or on pel's own pool when
    /// one is configured. It must not use its own arguments through the
    /// runtime (a read or a run of a buffer it writes would wait for itself).
    ///
    /// Optional: a kernel built without it runs on GPUs only
    /// ([`Kernel::has_cpu`] is false).
    pub fn cpu<S: Signature>(
        mut self,
        f: impl Fn(CpuArgs<'_, S>, &P) + Send + Sync + 'static,
    ) -> Self {
        let erased = move |raw: &[RawSlice], params: &[u8]| {
            // SAFETY: `raw` comes from the runtime, which builds it from the
            // call's host copies (16-aligned, sized from each buffer's
            // element size, checked against this signature's `S::specs()`
            // when the kernel was built and against the buffers' element
            // types and sizes at the call), refuses aliased writable
            // buffers, and holds every lease until this returns. No safe
            // code can break that: `Element`'s layout is checked at compile
            // time, and `RawSlice`s are made only by the runtime.
            let args = unsafe { CpuArgs::<S>::new(raw) };
            with_params(params, |p: &P| f(args, p))
        };
        self.cpu = Some(Given::new::<P>("cpu", (S::specs(), Box::new(erased))));
        self
    }

    /// The launch size as a count of invocations, from the params and the
    /// arguments' lengths. The default is one invocation per element of the
    /// first written argument.
    pub fn invocations(mut self, f: impl Fn(&P, &[usize]) -> u64 + Send + Sync + 'static) -> Self {
        let erased = move |bytes: &[u8], lens: &[usize]| {
            Grid::Invocations(with_params(bytes, |p: &P| f(p, lens)))
        };
        self.grid = Some(Given::new::<P>("invocations", Box::new(erased)));
        self
    }

    /// The launch size as a count of workgroups (for kernels where one
    /// workgroup computes one tile). The shader numbers them linearly as
    /// `pel_workgroup_index(wid, groups)` from `@builtin(workgroup_id)` and
    /// `@builtin(num_workgroups)`, i.e. `wid.x + wid.y * groups.x`.
    pub fn workgroups(mut self, f: impl Fn(&P, &[usize]) -> u64 + Send + Sync + 'static) -> Self {
        let erased = move |bytes: &[u8], lens: &[usize]| {
            Grid::Workgroups(with_params(bytes, |p: &P| f(p, lens)))
        };
        self.grid = Some(Given::new::<P>("workgroups", Box::new(erased)));
        self
    }

    /// The problem size the performance model files a call under, from the
    /// params and the arguments' lengths: something the run time grows with,
    /// such as `m·n·k` for a matrix product. The default is the total number
    /// of elements of all arguments.
    pub fn cost(mut self, f: impl Fn(&P, &[usize]) -> u64 + Send + Sync + 'static) -> Self {
        let erased = move |bytes: &[u8], lens: &[usize]| with_params(bytes, |p: &P| f(p, lens));
        self.cost = Some(Given::new::<P>("cost", Box::new(erased)));
        self
    }

    /// A call's floating-point operations and bytes of memory traffic,
    /// from the params and the arguments' lengths: what a roofline needs
    /// to time the kernel on a machine pel has never run on (see
    /// [`Machine`](crate::Machine)). Without it a roofline counts one
    /// operation per unit of [`cost`](Self::cost) and the arguments'
    /// bytes.
    pub fn work(mut self, f: impl Fn(&P, &[usize]) -> (f64, f64) + Send + Sync + 'static) -> Self {
        let erased = move |bytes: &[u8], lens: &[usize]| with_params(bytes, |p: &P| f(p, lens));
        self.work = Some(Given::new::<P>("work", Box::new(erased)));
        self
    }

    /// Declares the kernel splittable, so one call can run partly on a GPU
    /// and partly on the CPU at once (co-execution, in the manner of Qilin).
    /// It needs a CPU implementation ([`cpu`](Self::cpu)), and, since `part`
    /// returns params, must be written for the kernel's final params type.
    ///
    /// The call's work must be an index range `0..items(params, lens)` over
    /// its outputs: item `i` writes only its own elements of each written
    /// buffer, and every written buffer has the same whole number of
    /// elements per item (one per element for an elementwise kernel, a row
    /// for an image or a matrix product). `part(params, start..end)` returns
    /// the params of a launch that computes only items `start..end`; the
    /// launch size (`invocations`/`workgroups`) must follow those params.
    /// The runtime calibrates the share each device gets, keeps it in the
    /// performance model, and runs unsplit where splitting does not pay.
    /// Each element is computed by exactly one device, so the result equals
    /// the unsplit runs' elements, each from the device that computed it.
    /// `part` returns its params by value, on the stack: keep a splittable
    /// kernel's params small (kilobytes, not megabytes).
    pub fn splittable(
        mut self,
        items: impl Fn(&P, &[usize]) -> u64 + Send + Sync + 'static,
        part: impl Fn(&P, std::ops::Range<u64>) -> P + Send + Sync + 'static,
    ) -> Self {
        let split = Split {
            items: Box::new(move |bytes: &[u8], lens: &[usize]| {
                with_params(bytes, |p: &P| items(p, lens))
            }),
            part: Box::new(move |bytes: &[u8], start: u64, end: u64| {
                with_params(bytes, |p: &P| {
                    bytemuck::bytes_of(&part(p, start..end)).to_vec()
                })
            }),
        };
        self.split = Some(Given::new::<P>("splittable", split));
        self
    }

    /// Another implementation of the kernel: a shader for GPUs or a
    /// function for the CPU (see [`Variant`]). The dispatcher measures each
    /// on each device it may run on, as it measures devices, and runs the
    /// (device, variant) it expects to finish first; a variant that proves
    /// several times slower than another on a device is not explored there
    /// further. Each variant has an identity of its own (from its label and
    /// code), so changing one keeps the others' measurements. A kernel with
    /// variants is not split between devices.
    pub fn variant(mut self, v: Variant<P>) -> Self {
        self.variants.push(v.given());
        self
    }

    /// Parses and validates the WGSL, checks the CPU signature and the params
    /// against it, checks that every closure given fits the final params
    /// type, and returns the kernel.
    pub fn build(self) -> Result<Kernel> {
        let name = self.name;
        let (reflection, wgsl) = reflect::reflect(&name, &self.source, &self.entry)?;
        let cpu = self.cpu.map(|c| c.fit::<P>(&name, true)).transpose()?;
        let grid = self.grid.map(|g| g.fit::<P>(&name, true)).transpose()?;
        let cost = self.cost.map(|c| c.fit::<P>(&name, true)).transpose()?;
        let work = self.work.map(|w| w.fit::<P>(&name, true)).transpose()?;
        let split = self.split.map(|s| s.fit::<P>(&name, false)).transpose()?;
        let variants = self
            .variants
            .into_iter()
            .map(|v| v.fit::<P>(&name, true))
            .collect::<Result<Vec<_>>>()?;
        if let Some((specs, _)) = &cpu {
            signature::check(&name, &reflection, specs)?;
        }
        if split.is_some() && cpu.is_none() {
            return Err(Error::SplittableWithoutCpu { kernel: name });
        }

        let params_size = std::mem::size_of::<P>();
        match &reflection.uniform {
            Some(u) if u.size as usize != params_size => {
                return Err(Error::Params {
                    kernel: name,
                    message: format!(
                        "the WGSL uniform `{}` is {} bytes but {} is {} bytes; match the fields and padding",
                        u.name,
                        u.size,
                        std::any::type_name::<P>(),
                        params_size
                    ),
                });
            }
            None if params_size != 0 => {
                return Err(Error::Params {
                    kernel: name,
                    message: format!(
                        "the kernel has params {} ({} bytes) but its entry point uses no uniform block",
                        std::any::type_name::<P>(),
                        params_size
                    ),
                });
            }
            _ => {}
        }

        let grid: Arc<GridFn> = grid.map(Arc::<GridFn>::from).unwrap_or_else(|| {
            let first_written = reflection
                .storage
                .iter()
                .position(|b| b.access.writes())
                .unwrap_or(0);
            Arc::new(move |_: &[u8], lens: &[usize]| {
                Grid::Invocations(lens.get(first_written).copied().unwrap_or(0) as u64)
            })
        });
        let cost: Arc<CostFn> = cost.map(Arc::<CostFn>::from).unwrap_or_else(|| {
            Arc::new(|_: &[u8], lens: &[usize]| lens.iter().map(|&n| n as u64).sum())
        });
        let id = {
            let mut h = Fnv::new();
            // The composed WGSL: a change to the prelude is a change to the kernel.
            for part in [&name, &wgsl, &self.entry, &self.version] {
                h.write(part.as_bytes());
                h.write(&[0xff]);
            }
            h.finish()
        };
        let mut kernel = Kernel {
            inner: Arc::new(KernelInner {
                name: name.into(),
                source: self.source,
                wgsl,
                id,
                reflection,
                params_type: TypeId::of::<P>(),
                params_type_name: std::any::type_name::<P>(),
                params_size,
                cpu: cpu.map(|(_, f)| Arc::<CpuFn>::from(f)),
                grid,
                cost,
                work: work.map(Arc::<WorkFn>::from),
                split: split.map(Arc::new),
                variants: Vec::new(),
                on_gpu: true,
            }),
        };
        if !variants.is_empty() {
            let mut built: Vec<variant::Built> = Vec::with_capacity(variants.len());
            for v in variants {
                let taken: Vec<String> = built.iter().map(|b| b.label.to_string()).collect();
                built.push(v.build(&kernel, &taken)?);
            }
            Arc::get_mut(&mut kernel.inner)
                .expect("the kernel is not shared yet")
                .variants = built;
        }
        Ok(kernel)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod variant_tests;
