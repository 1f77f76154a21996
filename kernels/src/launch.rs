//! The one launch path of every kernel: a kernel writes its passes once, as
//! a function generic over [`Launch`], and [`run_and_submit!`] makes its
//! `run` (executed now, times summed over the passes) and its `submit`
//! (tasks in the runtime's graph, the last one returned) from it.
//!
//! This module owns how a pass reaches the runtime; it knows nothing of any
//! kernel.

use std::time::Duration;

use pel_runtime::{
    Backend, Buffer, BufferArg, Element, Kernel, KernelBuilder, Reason, Result, RunInfo, Runtime,
    Signature, Target, Task,
};

/// The start of every kernel's builder chain: `name` from `wgsl`, params
/// `P`, and the CPU implementation `cpu` over the arguments of signature
/// `S`, already split into their slices.
pub(crate) fn builder<P, S>(
    name: impl Into<String>,
    wgsl: impl Into<String>,
    cpu: impl for<'a> Fn(S::Slices<'a>, &P) + Send + Sync + 'static,
) -> KernelBuilder<P>
where
    P: bytemuck::Pod + Send + Sync,
    S: Signature,
{
    Kernel::builder(name, wgsl)
        .params::<P>()
        .cpu::<S>(move |args, p| cpu(args.split(), p))
}

/// How an operation launches each of its passes: executed now ([`Execute`])
/// or submitted as tasks ([`Submit`]).
pub(crate) trait Launch {
    /// What the whole operation returns: what its last launch gave.
    type Out;
    /// The runtime the passes run on (for the buffers between passes).
    fn rt(&self) -> &Runtime;
    /// Where the passes go.
    fn target(&self) -> Target;
    /// Launches one pass.
    fn launch<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<Self::Out>;
    /// Sends the rest of the operation where `first` ran, when that is known
    /// now (an executed pass), and says where; a submitted pass is placed
    /// when it runs, so its followers are placed on their own (`None`).
    fn follow(&mut self, first: &Self::Out) -> Option<Backend>;
    /// Whether the operation runs as it is launched, here and now (so it
    /// can be timed as a whole): true when executed, false when submitted.
    fn runs_now(&self) -> bool;
}

/// Runs each pass at once at `target`; each launch returns the run so far:
/// the last pass's placement with the times of every pass added up, so the
/// last pass's answer is the whole operation's.
pub(crate) struct Execute<'a> {
    rt: &'a Runtime,
    target: Target,
    elapsed: Duration,
    exec: Duration,
    /// Why the operation runs where it does, once a pass has decided it for
    /// the rest ([`Launch::follow`]).
    reason: Option<Reason>,
}

impl<'a> Execute<'a> {
    pub(crate) fn new(rt: &'a Runtime, target: Target) -> Self {
        Execute {
            rt,
            target,
            elapsed: Duration::ZERO,
            exec: Duration::ZERO,
            reason: None,
        }
    }

    /// Adds a run made outside [`Launch::launch`] (a host step between
    /// passes, say) to the times so far, and returns the run so far.
    pub(crate) fn add(&mut self, info: RunInfo) -> RunInfo {
        self.elapsed += info.elapsed;
        self.exec += info.exec;
        RunInfo {
            elapsed: self.elapsed,
            exec: self.exec,
            reason: self.reason.unwrap_or(info.reason),
            ..info
        }
    }
}

impl Launch for Execute<'_> {
    type Out = RunInfo;
    fn rt(&self) -> &Runtime {
        self.rt
    }
    fn launch<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<RunInfo> {
        let info = self.rt.execute(self.target, kernel, args, params)?;
        Ok(self.add(info))
    }
    fn target(&self) -> Target {
        self.target
    }
    fn follow(&mut self, first: &RunInfo) -> Option<Backend> {
        self.target = Target::On(first.backend);
        self.reason = Some(first.reason);
        Some(first.backend)
    }
    fn runs_now(&self) -> bool {
        true
    }
}

/// Submits each pass at `target`; the runtime orders them by the buffers
/// they share.
pub(crate) struct Submit<'a> {
    rt: &'a Runtime,
    target: Target,
}

impl<'a> Submit<'a> {
    pub(crate) fn new(rt: &'a Runtime, target: Target) -> Self {
        Submit { rt, target }
    }
}

impl Launch for Submit<'_> {
    type Out = Task;
    fn rt(&self) -> &Runtime {
        self.rt
    }
    fn launch<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<Task> {
        self.rt.submit_to(self.target, kernel, args, params)
    }
    fn target(&self) -> Target {
        self.target
    }
    fn follow(&mut self, _first: &Task) -> Option<Backend> {
        None
    }
    fn runs_now(&self) -> bool {
        false
    }
}

/// A kernel's public `run` and `submit` (by any names), both through one
/// private function generic over [`Launch`]:
///
/// ```ignore
/// run_and_submit! {
///     /// Docs of run.
///     run,
///     /// Docs of submit.
///     submit = launch(x: &Buffer<f32>, y: &Buffer<f32>);
/// }
/// ```
///
/// makes `run(&self, rt, target, x, y) -> Result<RunInfo>` and
/// `submit(&self, rt, target, x, y) -> Result<Task>`, calling
/// `self.launch(&mut launcher, x, y)`.
macro_rules! run_and_submit {
    ($(
        $(#[$run_doc:meta])* $run:ident,
        $(#[$submit_doc:meta])* $submit:ident = $via:ident($($arg:ident: $ty:ty),* $(,)?);
    )+) => {$(
        $(#[$run_doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $run(
            &self,
            rt: &pel_runtime::Runtime,
            target: pel_runtime::Target,
            $($arg: $ty),*
        ) -> pel_runtime::Result<pel_runtime::RunInfo> {
            self.$via(&mut $crate::launch::Execute::new(rt, target), $($arg),*)
        }

        $(#[$submit_doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $submit(
            &self,
            rt: &pel_runtime::Runtime,
            target: pel_runtime::Target,
            $($arg: $ty),*
        ) -> pel_runtime::Result<pel_runtime::Task> {
            self.$via(&mut $crate::launch::Submit::new(rt, target), $($arg),*)
        }
    )+};
}
pub(crate) use run_and_submit;

/// A kernel type that holds one kernel and launches it once per call: the
/// struct, its `new` (from `$build`, a `Result<Kernel>`), its `kernel`, and
/// its `run` and `submit`, each launching the kernel over `[$buf, ...]`
/// with the params `$params` (a `Result`, checked first):
///
/// ```ignore
/// one_kernel! {
///     /// Docs of the type.
///     Saxpy = build();
///     /// Docs of run.
///     /// Docs of submit.
///     (a: f32, x: &Buffer<f32>, y: &Buffer<f32>) => [x, y], Self::params(a, x, y);
/// }
/// ```
macro_rules! one_kernel {
    (
        $(#[$doc:meta])* $name:ident = $build:expr;
        $(#[$run_doc:meta])* run,
        $(#[$submit_doc:meta])* submit($($arg:ident: $ty:ty),* $(,)?)
            => [$($buf:expr),* $(,)?], $params:expr;
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            kernel: pel_runtime::Kernel,
        }

        impl $name {
            /// Builds the kernel.
            pub fn new() -> pel_runtime::Result<Self> {
                Ok($name { kernel: $build? })
            }

            /// The underlying kernel.
            pub fn kernel(&self) -> &pel_runtime::Kernel {
                &self.kernel
            }

            $crate::launch::run_and_submit! {
                $(#[$run_doc])* run,
                $(#[$submit_doc])* submit = launch($($arg: $ty),*);
            }

            #[allow(clippy::too_many_arguments)]
            fn launch<L: $crate::launch::Launch>(
                &self,
                l: &mut L,
                $($arg: $ty),*
            ) -> pel_runtime::Result<L::Out> {
                let params = $params?;
                l.launch(&self.kernel, &[$($buf),*], &params)
            }
        }
    };
}
pub(crate) use one_kernel;

/// Launches `kernel` over `input` (`n` elements) pass after pass, each
/// reducing blocks of `block` elements to one value into a buffer of its
/// own, until a pass leaves one value, which it writes into `out`; returns
/// what the last launch gave. At least one pass runs, even for `n` ≤ 1.
/// `params(n, groups)` is the params of a pass over `n` elements writing
/// `groups` values.
pub(crate) fn reduce_to_one<L: Launch, T: Element, P: bytemuck::Pod>(
    l: &mut L,
    kernel: &Kernel,
    input: &Buffer<T>,
    mut n: usize,
    block: usize,
    out: &Buffer<T>,
    params: impl Fn(u32, u32) -> P,
) -> Result<L::Out> {
    let mut input = input.clone();
    loop {
        let groups = n.div_ceil(block).max(1);
        let next = if groups == 1 {
            out.clone()
        } else {
            l.rt().zeros(groups)
        };
        let last = l.launch(kernel, &[&input, &next], &params(n as u32, groups as u32))?;
        if groups == 1 {
            return Ok(last);
        }
        (input, n) = (next, groups);
    }
}
