//! Variants: other implementations of one kernel, another WGSL shader or
//! another CPU function, each with an identity of its own. The dispatcher
//! measures every (device, variant) pair as it measures devices and runs
//! the one it expects to finish first; a user never picks one by hand.
//!
//! A variant is built into a [`Kernel`] of its own (named
//! `kernel[label]`), so everything downstream of placement (pipelines,
//! the model's samples, exclusions, replay) keys on the variant's id
//! without knowing variants exist.

use std::marker::PhantomData;
use std::sync::Arc;

use super::{CpuArgs, CpuFn, Given, Grid, GridFn, Kernel, RawSlice, Reflection, Signature};
use super::{reflect, with_params};
use crate::error::{Error, Result};
use crate::hash::Fnv;
use crate::info::DeviceInfo;

/// A predicate on a device's description: whether a variant may run there
/// (StarPU's `can_execute`).
pub(super) type CanRunFn = dyn Fn(&DeviceInfo) -> bool + Send + Sync;

/// Another implementation of a kernel, for
/// [`KernelBuilder::variant`](super::KernelBuilder::variant): a WGSL
/// shader ([`wgsl`](Self::wgsl)) that runs on GPUs, or a Rust function
/// ([`cpu`](Self::cpu)) that runs on the CPU. It takes the kernel's
/// arguments and params: a shader's bindings must be the kernel's, which
/// the kernel's `build` checks.
///
/// # Examples
///
/// ```
/// use pel_runtime::{Kernel, Read, ReadWrite, Variant};
///
/// let wgsl = |size: u32| format!(r#"
///     @group(0) @binding(0) var<storage, read> x: array<f32>;
///     @group(0) @binding(1) var<storage, read_write> y: array<f32>;
///     @compute @workgroup_size({size})
///     fn main(@builtin(global_invocation_id) id: vec3<u32>,
///             @builtin(num_workgroups) groups: vec3<u32>) {{
///         let i = pel_index(id, groups);
///         if i < arrayLength(&y) {{ y[i] = 2.0 * x[i]; }}
///     }}"#);
/// let double = Kernel::builder("double", wgsl(64))
///     .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| {
///         let (x, y) = args.split();
///         for (y, x) in y.iter_mut().zip(x) { *y = 2.0 * x; }
///     })
///     // Wider workgroups, for devices that like them.
///     .variant(Variant::wgsl("wide", wgsl(256)))
///     .build()?;
/// assert_eq!(double.variants(), vec!["wide"]);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
#[must_use = "a variant does nothing until given to a kernel builder"]
pub struct Variant<P> {
    label: String,
    kind: Kind,
    can_run: Option<Arc<CanRunFn>>,
    _params: PhantomData<fn() -> P>,
}

enum Kind {
    Gpu {
        source: String,
        entry: String,
        grid: Option<Box<GridFn>>,
    },
    Cpu {
        specs: Vec<super::ArgSpec>,
        f: Box<CpuFn>,
        version: String,
    },
}

impl<P: bytemuck::Pod + Send + Sync> Variant<P> {
    /// A shader for GPUs, labelled `label`, with entry point `main`
    /// (see [`entry`](Self::entry)) and the kernel's launch size (see
    /// [`invocations`](Self::invocations), [`workgroups`](Self::workgroups)).
    pub fn wgsl(label: impl Into<String>, source: impl Into<String>) -> Self {
        Variant {
            label: label.into(),
            kind: Kind::Gpu {
                source: source.into(),
                entry: "main".to_owned(),
                grid: None,
            },
            can_run: None,
            _params: PhantomData,
        }
    }

    /// A Rust function for the CPU, labelled `label`, as
    /// [`KernelBuilder::cpu`](super::KernelBuilder::cpu) takes one.
    pub fn cpu<S: Signature>(
        label: impl Into<String>,
        f: impl Fn(CpuArgs<'_, S>, &P) + Send + Sync + 'static,
    ) -> Self {
        let erased = move |raw: &[RawSlice], params: &[u8]| {
            // SAFETY: as for `KernelBuilder::cpu`: `raw` comes from the
            // runtime, built from the call's host copies (16-aligned, sized
            // from each buffer's element size, checked against `S::specs()`
            // when the kernel was built and against the buffers at the
            // call), with aliased writable buffers refused and every lease
            // held until this returns.
            let args = unsafe { CpuArgs::<S>::new(raw) };
            with_params(params, |p: &P| f(args, p))
        };
        Variant {
            label: label.into(),
            kind: Kind::Cpu {
                specs: S::specs(),
                f: Box::new(erased),
                version: String::new(),
            },
            can_run: None,
            _params: PhantomData,
        }
    }

    /// The shader's entry point (default `main`); nothing for a CPU variant.
    pub fn entry(mut self, name: impl Into<String>) -> Self {
        if let Kind::Gpu { entry, .. } = &mut self.kind {
            *entry = name.into();
        }
        self
    }

    /// The shader's launch size as invocations, where it differs from the
    /// kernel's (see [`KernelBuilder::invocations`](super::KernelBuilder::invocations)).
    pub fn invocations(mut self, f: impl Fn(&P, &[usize]) -> u64 + Send + Sync + 'static) -> Self {
        if let Kind::Gpu { grid, .. } = &mut self.kind {
            *grid = Some(Box::new(move |bytes: &[u8], lens: &[usize]| {
                Grid::Invocations(with_params(bytes, |p: &P| f(p, lens)))
            }));
        }
        self
    }

    /// The shader's launch size as workgroups, where it differs from the
    /// kernel's (a variant that computes a larger tile per workgroup).
    pub fn workgroups(mut self, f: impl Fn(&P, &[usize]) -> u64 + Send + Sync + 'static) -> Self {
        if let Kind::Gpu { grid, .. } = &mut self.kind {
            *grid = Some(Box::new(move |bytes: &[u8], lens: &[usize]| {
                Grid::Workgroups(with_params(bytes, |p: &P| f(p, lens)))
            }));
        }
        self
    }

    /// A version string for a CPU variant's code: changing it changes the
    /// variant's identity, so its old measurements are not reused.
    pub fn version(mut self, v: impl Into<String>) -> Self {
        if let Kind::Cpu { version, .. } = &mut self.kind {
            *version = v.into();
        }
        self
    }

    /// Where the variant may run: placement offers it only on devices for
    /// which `pred` holds (for instance, a shader that needs more
    /// workgroup memory than some devices have, or one written for a
    /// vendor).
    pub fn can_run(mut self, pred: impl Fn(&DeviceInfo) -> bool + Send + Sync + 'static) -> Self {
        self.can_run = Some(Arc::new(pred));
        self
    }

    /// The variant with its closures' params type erased, for the builder.
    pub(super) fn given(self) -> Given<Spec> {
        Given::new::<P>(
            "variant",
            Spec {
                label: self.label,
                kind: self.kind,
                can_run: self.can_run,
            },
        )
    }
}

/// A variant as the builder keeps it.
pub(super) struct Spec {
    label: String,
    kind: Kind,
    can_run: Option<Arc<CanRunFn>>,
}

/// One of a kernel's variants, built: a kernel of its own, and where it runs.
pub(crate) struct Built {
    pub(crate) kernel: Kernel,
    /// Shared: every placement of the kernel names it.
    pub(crate) label: Arc<str>,
    pub(crate) can_run: Option<Arc<CanRunFn>>,
}

impl Spec {
    /// Builds the variant of `parent`: a shader is reflected and its
    /// bindings checked against the kernel's; a CPU function's signature
    /// likewise. Shares the parent's cost, work and launch size (where the
    /// variant gives none).
    pub(super) fn build(self, parent: &Kernel, taken: &[String]) -> Result<Built> {
        let p = &parent.inner;
        let label = self.label;
        let name = format!("{}[{label}]", p.name);
        let refuse = |message: String| Error::Variant {
            kernel: p.name.to_string(),
            variant: label.clone(),
            message,
        };
        if label.is_empty() || taken.contains(&label) {
            return Err(refuse(if label.is_empty() {
                "a variant needs a label".to_owned()
            } else {
                "two variants share this label".to_owned()
            }));
        }
        let mut h = Fnv::new();
        for part in [&*p.name, &label] {
            h.write(part.as_bytes());
            h.write(&[0xff]);
        }
        // The kernel's code, shared, less what a variant does not have: a
        // CPU function (a shader variant's) or a shader (a CPU variant's),
        // and a split.
        let mut inner = p.shared();
        inner.name = name.as_str().into();
        inner.cpu = None;
        inner.split = None;
        inner.on_gpu = false;
        match self.kind {
            Kind::Gpu {
                source,
                entry,
                grid,
            } => {
                let (reflection, wgsl) = reflect::reflect(&name, &source, &entry)?;
                same_bindings(&p.reflection, &reflection).map_err(refuse)?;
                for part in [&wgsl, &entry] {
                    h.write(part.as_bytes());
                    h.write(&[0xff]);
                }
                inner.source = source;
                inner.wgsl = wgsl;
                inner.reflection = reflection;
                inner.on_gpu = true;
                if let Some(g) = grid {
                    inner.grid = Arc::from(g);
                }
            }
            Kind::Cpu { specs, f, version } => {
                super::signature::check(&name, &p.reflection, &specs)?;
                h.write(b"cpu\xff");
                h.write(version.as_bytes());
                inner.cpu = Some(Arc::from(f));
            }
        }
        inner.id = h.finish();
        Ok(Built {
            kernel: Kernel {
                inner: Arc::new(inner),
            },
            label: label.into(),
            can_run: self.can_run,
        })
    }
}

impl Kernel {
    /// The labels of the kernel's variants (see [`KernelBuilder::variant`](super::KernelBuilder::variant)),
    /// in the order given.
    pub fn variants(&self) -> Vec<&str> {
        self.inner.variants.iter().map(|v| &*v.label).collect()
    }

    /// The kernel's own implementation alone, without its variants: the
    /// same identity (its measurements are the kernel's own), run as if no
    /// variant had been given. A benchmark times each implementation so.
    pub fn alone(&self) -> Kernel {
        Kernel {
            inner: Arc::new(self.inner.shared()),
        }
    }

    /// Variant `label` as a kernel of its own (named `kernel[label]`, with
    /// the variant's identity, so its measurements are the variant's):
    /// it runs where its code can, and nothing else is tried.
    pub fn variant_kernel(&self, label: &str) -> Option<&Kernel> {
        self.inner
            .variants
            .iter()
            .find(|v| &*v.label == label)
            .map(|v| &v.kernel)
    }

    /// The kernel's variants, built.
    pub(crate) fn built_variants(&self) -> &[Built] {
        &self.inner.variants
    }

    /// Implementation `i`: the kernel itself for 0, else variant `i - 1`.
    pub(crate) fn implementation(&self, i: u8) -> &Kernel {
        match i {
            0 => self,
            i => &self.inner.variants[i as usize - 1].kernel,
        }
    }

    /// Whether its shader runs on GPUs (false for a CPU variant).
    pub(crate) fn on_gpu(&self) -> bool {
        self.inner.on_gpu
    }
}

impl super::KernelInner {
    /// A copy of the kernel's own implementation sharing its code (its
    /// closures and shader), without variants.
    fn shared(&self) -> super::KernelInner {
        super::KernelInner {
            name: Arc::clone(&self.name),
            source: self.source.clone(),
            wgsl: self.wgsl.clone(),
            id: self.id,
            reflection: self.reflection.clone(),
            params_type: self.params_type,
            params_type_name: self.params_type_name,
            params_size: self.params_size,
            cpu: self.cpu.clone(),
            grid: Arc::clone(&self.grid),
            cost: Arc::clone(&self.cost),
            work: self.work.clone(),
            split: self.split.clone(),
            variants: Vec::new(),
            on_gpu: self.on_gpu,
        }
    }
}

/// Whether a variant's shader binds what the kernel's does: the same
/// storage buffers (binding, element type, access) and the same params
/// block size. The error names both sides.
fn same_bindings(kernel: &Reflection, variant: &Reflection) -> std::result::Result<(), String> {
    let side = |r: &Reflection| {
        r.storage
            .iter()
            .map(|b| {
                format!(
                    "@binding({}) {}: {} {}",
                    b.binding, b.name, b.access, b.elem
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let storage_same = kernel.storage.len() == variant.storage.len()
        && kernel
            .storage
            .iter()
            .zip(&variant.storage)
            .all(|(a, b)| a.binding == b.binding && a.elem == b.elem && a.access == b.access);
    if !storage_same {
        return Err(format!(
            "its shader binds [{}] where the kernel's binds [{}]",
            side(variant),
            side(kernel)
        ));
    }
    let size = |r: &Reflection| r.uniform.as_ref().map(|u| u.size);
    if size(kernel) != size(variant) {
        let show =
            |s: Option<u32>| s.map_or("no params".to_owned(), |b| format!("params of {b} bytes"));
        return Err(format!(
            "its shader takes {} where the kernel's takes {}",
            show(size(variant)),
            show(size(kernel))
        ));
    }
    Ok(())
}
