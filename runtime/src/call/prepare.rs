//! Prepare: a call's params and arguments checked against the kernel's
//! reflected bindings, sized, and its read and written buffers worked out.
//! Nothing is locked or moved here.

use crate::buffer::{BufferArg, Handle};
use crate::error::{Error, Result};
use crate::ids::Target;
use crate::kernel::Kernel;

use super::{Call, Engine, Few};

impl Engine {
    /// Checks a call's params and arguments against the kernel and sizes it.
    pub(crate) fn call<'a, P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        args: &'a [&'a dyn BufferArg],
        params: &'a P,
    ) -> Result<Call<'a>> {
        kernel.check_params::<P>()?;
        let args: Few<&Handle> = args.iter().map(|a| &**a.as_arg().handle).collect();
        self.check_args(kernel, &args)?;
        let params = bytemuck::bytes_of(params);
        debug_assert_eq!(params.len(), kernel.params_size());
        // The lengths on the stack where they fit: every call makes them.
        let mut few = [0usize; 8];
        let many: Vec<usize>;
        let lens: &[usize] = if args.len() <= few.len() {
            for (l, h) in few.iter_mut().zip(&args) {
                *l = h.len;
            }
            &few[..args.len()]
        } else {
            many = args.iter().map(|h| h.len).collect();
            &many
        };
        let (reads, writes) = access_sets(kernel, &args);
        Ok(Call {
            size: kernel.cost(params, lens),
            workgroups: kernel.workgroups(params, lens),
            args,
            params,
            reads,
            writes,
            task: None,
            target: Target::Auto,
            placed: None,
        })
    }

    pub(super) fn check_args(&self, kernel: &Kernel, args: &[&Handle]) -> Result<()> {
        let reflection = kernel.reflection();
        reflection.check_arg_count(kernel.name(), args.len())?;
        let storage = &reflection.storage;
        for (index, (h, binding)) in args.iter().zip(storage).enumerate() {
            if h.runtime != self.id {
                return Err(Error::ForeignBuffer {
                    kernel: kernel.name().to_owned(),
                    index,
                    owner: h.runtime,
                    runtime: self.id,
                });
            }
            reflection.check_arg_elem(kernel.name(), index, h.elem)?;
            // Unreachable from safe code (`Element`'s layout is checked when
            // compiled); kept because the CPU path's slices rely on it.
            if h.elem_size != binding.elem.size() as usize {
                return Err(Error::ArgType {
                    kernel: kernel.name().to_owned(),
                    index,
                    name: binding.name.clone(),
                    what: "the call",
                    expected: format!("{} ({} bytes)", binding.elem, binding.elem.size()),
                    got: format!("{} of {} bytes", h.elem, h.elem_size),
                });
            }
        }
        for i in 0..args.len() {
            for j in i + 1..args.len() {
                if args[i].id == args[j].id
                    && (storage[i].access.writes() || storage[j].access.writes())
                {
                    return Err(Error::AliasedArguments {
                        kernel: kernel.name().to_owned(),
                        first: i,
                        second: j,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The buffers a call only reads, and those it writes (from the shader's
/// access modes; a buffer passed twice counts once, as written if either is).
pub(crate) fn access_sets(kernel: &Kernel, args: &[&Handle]) -> (Few<u64>, Few<u64>) {
    let (mut reads, mut writes) = (Few::new(), Few::new());
    for (h, b) in args.iter().zip(&kernel.reflection().storage) {
        if b.access.writes() {
            writes.push(h.id);
        }
    }
    for (h, b) in args.iter().zip(&kernel.reflection().storage) {
        if !b.access.writes() && !writes.contains(&h.id) && !reads.contains(&h.id) {
            reads.push(h.id);
        }
    }
    (reads, writes)
}
