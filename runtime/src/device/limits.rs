//! A device's limits applied to a call before anything is compiled or
//! moved: every GPU and simulated device checks a call the same way.

use crate::error::{Error, Result};
use crate::kernel::Kernel;

use super::DeviceLimits;

/// Splits a linear count of workgroups into an (x, y) grid with at most
/// `per_dim` in each dimension and as few extra workgroups as possible.
/// Shaders unfold it with `pel_index` (or by hand, as
/// `wid.x + wid.y * num_workgroups.x` for workgroup `wid`) and skip indices
/// past the count. `None` when even `per_dim²` is too few.
pub(crate) fn fold(workgroups: u64, per_dim: u32) -> Option<(u32, u32)> {
    let d = per_dim as u64;
    if workgroups <= d {
        return Some((workgroups as u32, 1));
    }
    if workgroups > d * d {
        return None;
    }
    let y = workgroups.div_ceil(d);
    let x = workgroups.div_ceil(y);
    Some((x as u32, y as u32))
}

/// Splits a linear workgroup count over x and y (see [`fold`]), or says
/// why it cannot, for `kernel` on the device `label`.
pub(crate) fn fold_for(
    limits: &DeviceLimits,
    label: &dyn Fn() -> String,
    kernel: &str,
    workgroups: u64,
) -> Result<(u32, u32)> {
    let per_dim = limits.max_workgroups_per_dim;
    fold(workgroups, per_dim).ok_or_else(|| Error::DispatchTooLarge {
        kernel: kernel.to_owned(),
        workgroups,
        limit: per_dim as u64 * per_dim as u64,
        per_dim,
        device: label(),
    })
}

/// Whether this device can run `kernel` right with arguments of
/// `arg_bytes` bytes (in binding order), `params_len` bytes of params
/// and `workgroups` workgroups; a typed error naming the limit if not.
/// Nothing is compiled or moved: placement asks it of every GPU.
pub(crate) fn check_call(
    l: &DeviceLimits,
    label: &dyn Fn() -> String,
    kernel: &Kernel,
    arg_bytes: &mut dyn Iterator<Item = u64>,
    params_len: usize,
    workgroups: u64,
) -> Result<()> {
    let r = kernel.reflection();
    // Before any pipeline: wgpu would refuse it, or a driver crash on it.
    let size = r.workgroup_size;
    if size.iter().zip(l.max_workgroup_size).any(|(&s, m)| s > m)
        || r.workgroup_invocations() > l.max_invocations_per_workgroup as u64
    {
        return Err(Error::WorkgroupTooLarge {
            kernel: kernel.name().to_owned(),
            size,
            invocations: r.workgroup_invocations(),
            max_size: l.max_workgroup_size,
            max_invocations: l.max_invocations_per_workgroup,
            device: label(),
        });
    }
    if r.workgroup_memory > l.max_workgroup_memory as u64 {
        return Err(Error::WorkgroupMemoryTooLarge {
            kernel: kernel.name().to_owned(),
            bytes: r.workgroup_memory,
            limit: l.max_workgroup_memory as u64,
            device: label(),
        });
    }
    if params_len as u64 > l.max_uniform_binding {
        return Err(Error::ParamsTooLarge {
            kernel: kernel.name().to_owned(),
            size: params_len as u64,
            limit: l.max_uniform_binding,
            device: label(),
        });
    }
    fold_for(l, label, kernel.name(), workgroups)?;
    if workgroups > l.max_workgroups_per_dim as u64 && !r.unfolds_grid {
        return Err(Error::GridNotUnfolded {
            kernel: kernel.name().to_owned(),
            workgroups,
            per_dim: l.max_workgroups_per_dim,
            device: label(),
        });
    }
    // A launch of no workgroups runs no shader, so reads no length.
    if workgroups > 0 {
        for (index, (binding, bytes)) in r.storage.iter().zip(arg_bytes).enumerate() {
            if bytes == 0 && binding.array_length {
                return Err(Error::EmptyArrayLength {
                    kernel: kernel.name().to_owned(),
                    index,
                    name: binding.name.clone(),
                    device: label(),
                });
            }
        }
    }
    Ok(())
}
