//! The library's one error type. Every message names the kernel (or the
//! device), the argument, what was asked and the limit, so a user can act on
//! it without reading pel's source.

use crate::ids::Backend;

/// Everything that can go wrong in pel, as a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The WGSL did not parse or did not validate.
    #[error("kernel `{kernel}`: invalid WGSL at line {line}, column {column}: {message}")]
    InvalidShader {
        /// Kernel name.
        kernel: String,
        /// 1-based line of the offending code (0 when naga gave no span).
        line: u32,
        /// 1-based column of the offending code (0 when naga gave no span).
        column: u32,
        /// naga's message, with its notes.
        message: String,
    },

    /// The shader has no compute entry point of the requested name.
    #[error(
        "kernel `{kernel}`: no compute entry point `{entry}` in the WGSL (compute entry points: {available})"
    )]
    NoEntryPoint {
        /// Kernel name.
        kernel: String,
        /// The entry point asked for.
        entry: String,
        /// The compute entry points the shader does have.
        available: String,
    },

    /// A binding the runtime cannot drive (not a runtime-sized storage array,
    /// a second uniform, a texture, a group other than 0...).
    #[error("kernel `{kernel}`: binding @group({group}) @binding({binding}) `{name}`: {reason}")]
    UnsupportedBinding {
        /// Kernel name.
        kernel: String,
        /// Bind group.
        group: u32,
        /// Binding number.
        binding: u32,
        /// Variable name in the WGSL.
        name: String,
        /// What pel supports instead.
        reason: String,
    },

    /// The CPU implementation or the call passes a different number of
    /// arguments than the shader binds.
    #[error(
        "kernel `{kernel}`: {what} has {got} buffer argument(s), but the shader binds {expected} storage buffer(s)"
    )]
    ArgCount {
        /// Kernel name.
        kernel: String,
        /// "the CPU implementation" or "the call".
        what: &'static str,
        /// Number the shader binds.
        expected: usize,
        /// Number given.
        got: usize,
    },

    /// An argument's element type differs from the shader's.
    #[error(
        "kernel `{kernel}`: argument {index} (`{name}`): {what} uses element type {got}, but the shader declares array<{expected}>"
    )]
    ArgType {
        /// Kernel name.
        kernel: String,
        /// Position of the argument.
        index: usize,
        /// Variable name in the WGSL.
        name: String,
        /// "the CPU implementation" or "the call".
        what: &'static str,
        /// Element type in the WGSL.
        expected: String,
        /// Element type given.
        got: String,
    },

    /// The CPU implementation's access mode differs from the shader's.
    #[error(
        "kernel `{kernel}`: argument {index} (`{name}`): the shader declares it {expected} but the CPU implementation takes it {got}"
    )]
    ArgAccess {
        /// Kernel name.
        kernel: String,
        /// Position of the argument.
        index: usize,
        /// Variable name in the WGSL.
        name: String,
        /// Access in the WGSL.
        expected: String,
        /// Access in the CPU signature.
        got: String,
    },

    /// The params type differs from the shader's uniform block.
    #[error("kernel `{kernel}`: params: {message}")]
    Params {
        /// Kernel name.
        kernel: String,
        /// What differs.
        message: String,
    },

    /// The kernel was asked to run on the CPU but was built without a CPU
    /// implementation.
    #[error(
        "kernel `{kernel}`: built without `.cpu(...)`, so it runs on GPUs only; give the builder `.cpu::<Signature>(...)` to run it on the CPU"
    )]
    NoCpuImplementation {
        /// Kernel name.
        kernel: String,
    },

    /// The kernel was declared splittable without a CPU implementation to
    /// run the CPU's share of a call.
    #[error(
        "kernel `{kernel}`: `.splittable(...)` needs a CPU implementation to run the CPU's share of a call; give the builder `.cpu::<Signature>(...)` or drop `.splittable(...)`"
    )]
    SplittableWithoutCpu {
        /// Kernel name.
        kernel: String,
    },

    /// A kernel's variant does not fit the kernel: its shader binds other
    /// buffers or params, its label is empty or taken.
    #[error("kernel `{kernel}`, variant `{variant}`: {message}")]
    Variant {
        /// Kernel name.
        kernel: String,
        /// The variant's label.
        variant: String,
        /// What differs, naming the kernel's side and the variant's.
        message: String,
    },

    /// A buffer passed to a call belongs to another runtime.
    #[error(
        "kernel `{kernel}`: argument {index} is a buffer of another runtime (#{owner}); this is runtime #{runtime}: create it with this runtime"
    )]
    ForeignBuffer {
        /// Kernel name (or the operation).
        kernel: String,
        /// Position of the argument.
        index: usize,
        /// Runtime that owns the buffer.
        owner: u64,
        /// Runtime asked to use it.
        runtime: u64,
    },

    /// One buffer passed twice where at least one use writes it.
    #[error(
        "kernel `{kernel}`: arguments {first} and {second} are the same buffer and the shader writes at least one of them; pass distinct buffers"
    )]
    AliasedArguments {
        /// Kernel name.
        kernel: String,
        /// First position.
        first: usize,
        /// Second position.
        second: usize,
    },

    /// An argument is larger than the adapter can bind to one storage binding.
    #[error(
        "kernel `{kernel}`: argument {index} (`{name}`) is {size} bytes, more than {device}'s storage-binding limit of {limit} bytes; split the data or run on the CPU"
    )]
    BindingTooLarge {
        /// Kernel name.
        kernel: String,
        /// Position of the argument.
        index: usize,
        /// Variable name in the WGSL.
        name: String,
        /// Size in bytes.
        size: u64,
        /// `max_storage_buffer_binding_size` (or `max_buffer_size`).
        limit: u64,
        /// The device.
        device: String,
    },

    /// More workgroups than the adapter can dispatch, even folded into 2-D.
    #[error(
        "kernel `{kernel}`: {workgroups} workgroups asked, more than {device} can dispatch ({limit} = {per_dim}² folded into 2-D)"
    )]
    DispatchTooLarge {
        /// Kernel name.
        kernel: String,
        /// Workgroups asked.
        workgroups: u64,
        /// Largest count that fits.
        limit: u64,
        /// `max_compute_workgroups_per_dimension`.
        per_dim: u32,
        /// The device.
        device: String,
    },

    /// A launch pel would have to fold into a 2-D grid, of a shader that
    /// cannot unfold it: it takes no `@builtin(num_workgroups)`, so it would
    /// skip every row of the grid past the first.
    #[error(
        "kernel `{kernel}`: {workgroups} workgroups asked, more than the {per_dim} per dimension of {device}, and the shader takes no @builtin(num_workgroups), so it cannot unfold pel's 2-D grid: index with `pel_index(id, groups)` (id: @builtin(global_invocation_id), groups: @builtin(num_workgroups)), or run the call on the CPU"
    )]
    GridNotUnfolded {
        /// Kernel name.
        kernel: String,
        /// Workgroups asked.
        workgroups: u64,
        /// `max_compute_workgroups_per_dimension`.
        per_dim: u32,
        /// The device.
        device: String,
    },

    /// An empty argument whose `arrayLength` the shader takes, on a GPU: a
    /// GPU binds at least 4 bytes, so `arrayLength` would read 1 there where
    /// the CPU sees 0.
    #[error(
        "kernel `{kernel}`: argument {index} (`{name}`) is empty and the shader takes arrayLength of it, but {device} cannot bind 0 bytes, so arrayLength would read 1 where the CPU reads 0: run the call on the CPU, or pass the length in the params"
    )]
    EmptyArrayLength {
        /// Kernel name.
        kernel: String,
        /// Position of the argument.
        index: usize,
        /// Variable name in the WGSL.
        name: String,
        /// The device.
        device: String,
    },

    /// The shader's `@workgroup_size` is more than the device allows.
    #[error(
        "kernel `{kernel}`: @workgroup_size({}, {}, {}) ({invocations} invocations) is more than {device} allows: at most {}, {}, {} in x, y, z and {max_invocations} invocations in all; use a smaller workgroup size, or run the call on the CPU",
        size[0], size[1], size[2], max_size[0], max_size[1], max_size[2]
    )]
    WorkgroupTooLarge {
        /// Kernel name.
        kernel: String,
        /// `@workgroup_size(x, y, z)`.
        size: [u32; 3],
        /// Invocations in one workgroup: `x·y·z`.
        invocations: u64,
        /// `max_compute_workgroup_size_x/y/z`.
        max_size: [u32; 3],
        /// `max_compute_invocations_per_workgroup`.
        max_invocations: u32,
        /// The device.
        device: String,
    },

    /// The params block is larger than the device can bind as a uniform.
    #[error(
        "kernel `{kernel}`: params are {size} bytes, more than {device}'s uniform-binding limit of {limit} bytes; move the large part into a storage buffer argument, or run the call on the CPU"
    )]
    ParamsTooLarge {
        /// Kernel name.
        kernel: String,
        /// Size of the params in bytes.
        size: u64,
        /// `max_uniform_buffer_binding_size`.
        limit: u64,
        /// The device.
        device: String,
    },

    /// The shader's `var<workgroup>` memory is more than the device has
    /// per workgroup.
    #[error(
        "kernel `{kernel}`: the shader uses {bytes} bytes of workgroup memory, more than {device}'s {limit} bytes per workgroup; use smaller workgroup arrays, or run the call on the CPU"
    )]
    WorkgroupMemoryTooLarge {
        /// Kernel name.
        kernel: String,
        /// Workgroup memory the entry point uses, bytes.
        bytes: u64,
        /// `max_compute_workgroup_storage_size`.
        limit: u64,
        /// The device.
        device: String,
    },

    /// A backend that this runtime does not have.
    #[error("{backend} is not a backend of this runtime (backends: {available})")]
    NoSuchBackend {
        /// The backend asked for.
        backend: Backend,
        /// The backends that exist.
        available: String,
    },

    /// Bad input to a sample kernel or a buffer operation.
    #[error("kernel `{kernel}`: argument `{arg}`: {message}")]
    InvalidInput {
        /// Kernel or operation name.
        kernel: String,
        /// Argument name.
        arg: String,
        /// What is wrong, with the sizes involved.
        message: String,
    },

    /// wgpu reported a validation error.
    #[error("kernel `{kernel}` on {device}: wgpu validation error: {message}")]
    Gpu {
        /// Kernel name (or the operation).
        kernel: String,
        /// The device.
        device: String,
        /// wgpu's message.
        message: String,
    },

    /// Every backend that could run the kernel is excluded for it (see
    /// [`Decision::excluded`](crate::Decision::excluded)); force a backend
    /// with [`Target::On`](crate::Target::On) to run it anyway.
    #[error("kernel `{kernel}`: no backend can run it: {reason}")]
    NoBackend {
        /// Kernel name.
        kernel: String,
        /// Each excluded backend and why it was excluded.
        reason: String,
    },

    /// The GPU ran out of memory.
    #[error("{device} is out of memory while {doing}: {message}")]
    OutOfMemory {
        /// The device.
        device: String,
        /// What pel was doing.
        doing: String,
        /// wgpu's message.
        message: String,
    },

    /// The GPU device was lost.
    #[error("{device} was lost: {reason}")]
    DeviceLost {
        /// The device.
        device: String,
        /// The driver's reason.
        reason: String,
    },

    /// The CPU implementation of a kernel panicked.
    #[error("kernel `{kernel}`: the CPU implementation panicked: {message}")]
    KernelPanicked {
        /// Kernel name.
        kernel: String,
        /// The panic's message.
        message: String,
    },

    /// A buffer's contents were only on a device that was lost, and the
    /// tasks that produced them could not be replayed from copies still
    /// valid elsewhere.
    #[error(
        "buffer #{buffer}: its contents were only on {device}, which was lost, and cannot be rebuilt: {reason}"
    )]
    DataLost {
        /// The buffer's id in its runtime.
        buffer: u64,
        /// The lost device.
        device: String,
        /// Why replaying its lineage failed.
        reason: String,
    },

    /// A machine description ([`Machine`](crate::Machine)) that cannot
    /// describe a machine: unreadable, malformed, or inconsistent.
    #[error("machine description {file}: `{field}`: {message}")]
    Machine {
        /// Where it came from (a path, or `<json>`).
        file: String,
        /// The field at fault (`gpus[1].link`, ...).
        field: String,
        /// What is wrong, with the values involved.
        message: String,
    },

    /// A distribution of a buffer over ranks that cannot be: a map over
    /// the wrong number of elements, a rank past the cluster, a block of
    /// zero.
    #[error("buffer {buffer}: rank {rank}: {message}")]
    Distribution {
        /// The buffer (its name, or `#id`).
        buffer: String,
        /// The rank at fault.
        rank: usize,
        /// What is wrong, with the values involved.
        message: String,
    },

    /// Something MPI refused or could not do, on this rank.
    #[error("rank {rank} of {size}: {message}")]
    Cluster {
        /// This process's rank.
        rank: usize,
        /// Ranks in the job.
        size: usize,
        /// What went wrong.
        message: String,
    },

    /// A fault-injection setting (`PEL_INJECT` or
    /// [`RuntimeBuilder::inject`](crate::RuntimeBuilder::inject)) that pel
    /// does not understand.
    #[error("PEL_INJECT: `{item}`: {message}")]
    BadInjection {
        /// The item of the setting.
        item: String,
        /// What is wrong with it, and what is accepted.
        message: String,
    },

    /// A call or submitted task did not run because a task that produced
    /// one of its inputs failed. However long the chain of dependents, the
    /// error names the task that failed first and its own error once.
    #[error(
        "kernel `{kernel}`: not run, because `{dependency}`, which produces its input, failed: {cause}"
    )]
    DependencyFailed {
        /// The call or task that did not run.
        kernel: String,
        /// The kernel of the task whose failure started the chain.
        dependency: String,
        /// That task's own error (never itself a `DependencyFailed`).
        cause: Box<Error>,
    },

    /// A read or write of a buffer whose writer, a submitted task, failed:
    /// the buffer holds no contents to give.
    #[error("buffer #{buffer}: `{writer}`, the task that writes it, failed: {cause}")]
    WriterFailed {
        /// The buffer's id in its runtime.
        buffer: u64,
        /// The kernel of the task that failed to write it.
        writer: String,
        /// Why that task failed (a `DependencyFailed` when it did not run).
        cause: Box<Error>,
    },

    /// A call into pel that could only wait for itself: from inside a
    /// kernel's CPU implementation or a submitted task, a use of the
    /// kernel's own arguments, or a wait for work that needs them.
    #[error("{what}: {message}")]
    WouldDeadlock {
        /// The operation refused, with its kernel and buffer.
        what: String,
        /// What it would have waited for, and what to do instead.
        message: String,
    },

    /// An invariant inside pel failed (a bug in pel, not in the caller).
    /// The calls it touched fail with this error; the runtime stays usable.
    #[error("{what}: pel internal error: {message} (please report it)")]
    Internal {
        /// The call that met it.
        what: String,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// This error as the cause a dependent reports: the root failure of a
    /// chain, so dependents of dependents do not nest their errors.
    pub(crate) fn root_failure(&self, failed_kernel: &str) -> (String, Box<Error>) {
        match self {
            Error::DependencyFailed {
                dependency, cause, ..
            } => (dependency.clone(), cause.clone()),
            other => (failed_kernel.to_owned(), Box::new(other.clone())),
        }
    }
}

/// pel's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
