//! The one launch path of every kernel: a kernel writes its passes once, as
//! a function generic over [`Launch`], and [`run_and_submit!`] makes its
//! `run` (executed now, times summed over the passes) and its `submit`
//! (tasks in the runtime's graph, the last one returned) from it.
//!
//! This module owns how a pass reaches the runtime; it knows nothing of any
//! kernel.

use std::time::Duration;

use pel_runtime::{BufferArg, Kernel, Result, RunInfo, Runtime, Target, Task};

/// How an operation launches each of its passes: executed now ([`Execute`])
/// or submitted as tasks ([`Submit`]).
pub(crate) trait Launch {
    /// What the whole operation returns: what its last launch gave.
    type Out;
    /// The runtime the passes run on (for the buffers between passes).
    fn rt(&self) -> &Runtime;
    /// Launches one pass.
    fn launch<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<Self::Out>;
}

/// Runs each pass at once at `target`; each launch returns the run so far:
/// the last pass's placement with the times of every pass added up, so the
/// last pass's answer is the whole operation's.
pub(crate) struct Execute<'a> {
    rt: &'a Runtime,
    target: Target,
    elapsed: Duration,
    exec: Duration,
}

impl<'a> Execute<'a> {
    pub(crate) fn new(rt: &'a Runtime, target: Target) -> Self {
        Execute {
            rt,
            target,
            elapsed: Duration::ZERO,
            exec: Duration::ZERO,
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
