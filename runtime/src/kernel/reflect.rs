//! Reads a kernel's interface out of its WGSL with naga: the entry point's
//! workgroup size, each storage binding's access mode and element type, and
//! the size of the uniform params block. Only bindings the entry point
//! actually uses count, exactly as wgpu's automatic pipeline layout sees them.

use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{AddressSpace, ArraySize, ScalarKind, ShaderStage, StorageAccess, TypeInner};

use super::signature::{Access, ElemType, Scalar};
use crate::error::{Error, Result};

/// One storage buffer the shader binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageBinding {
    /// The variable's name in the WGSL.
    pub name: String,
    /// `@group(..)`: always 0 today.
    pub group: u32,
    /// `@binding(..)`.
    pub binding: u32,
    /// Read or read-write, as declared.
    pub access: Access,
    /// Element type of the runtime-sized array.
    pub elem: ElemType,
}

/// The uniform block holding a kernel's scalar parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniformBinding {
    /// The variable's name in the WGSL.
    pub name: String,
    /// `@binding(..)` in group 0.
    pub binding: u32,
    /// Size of the block in bytes, as WGSL lays it out.
    pub size: u32,
}

/// What naga says about a kernel's entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reflection {
    /// The entry point's name.
    pub entry: String,
    /// `@workgroup_size(x, y, z)`.
    pub workgroup_size: [u32; 3],
    /// Storage buffers, sorted by binding: the kernel's argument list.
    pub storage: Vec<StorageBinding>,
    /// The params uniform, if the entry point uses one.
    pub uniform: Option<UniformBinding>,
}

impl Reflection {
    /// Parses, validates and reflects a WGSL compute shader as a kernel
    /// named `kernel` with this entry point would, without building one:
    /// an invalid shader is [`Error::InvalidShader`](crate::Error) with its
    /// line and column. (`pel validate` prints this.)
    pub fn of(kernel: &str, source: &str, entry: &str) -> Result<Reflection> {
        reflect(kernel, source, entry)
    }

    /// Invocations in one workgroup.
    pub fn workgroup_invocations(&self) -> u64 {
        self.workgroup_size.iter().map(|&d| d as u64).product()
    }
}

/// Parses, validates and reflects `source` for `entry`.
pub(crate) fn reflect(kernel: &str, source: &str, entry: &str) -> Result<Reflection> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| invalid_shader(kernel, e.location(source), e.emit_to_string(source)))?;
    let info = Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(&module)
        .map_err(|e| invalid_shader(kernel, e.location(source), e.emit_to_string(source)))?;

    let (index, ep) = module
        .entry_points
        .iter()
        .enumerate()
        .find(|(_, ep)| ep.stage == ShaderStage::Compute && ep.name == entry)
        .ok_or_else(|| Error::NoEntryPoint {
            kernel: kernel.to_owned(),
            entry: entry.to_owned(),
            available: {
                let names: Vec<_> = module
                    .entry_points
                    .iter()
                    .filter(|ep| ep.stage == ShaderStage::Compute)
                    .map(|ep| ep.name.as_str())
                    .collect();
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            },
        })?;
    let uses = info.get_entry_point(index);

    let mut storage = Vec::new();
    let mut uniform: Option<UniformBinding> = None;
    for (handle, var) in module.global_variables.iter() {
        let Some(rb) = var.binding else { continue };
        if uses[handle].is_empty() {
            continue;
        }
        let name = var.name.clone().unwrap_or_default();
        let unsupported = |reason: String| Error::UnsupportedBinding {
            kernel: kernel.to_owned(),
            group: rb.group,
            binding: rb.binding,
            name: name.clone(),
            reason,
        };
        if rb.group != 0 {
            return Err(unsupported(
                "pel binds group 0 only; move every binding to @group(0)".into(),
            ));
        }
        let ty = &module.types[var.ty].inner;
        match var.space {
            AddressSpace::Storage { access } => {
                let TypeInner::Array {
                    base,
                    size: ArraySize::Dynamic,
                    ..
                } = *ty
                else {
                    return Err(unsupported(
                        "a storage binding must be a runtime-sized array, `array<T>`".into(),
                    ));
                };
                let elem = elem_type(&module, base).ok_or_else(|| {
                    unsupported(
                        "element type must be f32, u32, i32, a vec2/vec4 of them, an atomic or a struct"
                            .into(),
                    )
                })?;
                let access = if access.contains(StorageAccess::STORE) {
                    Access::ReadWrite
                } else {
                    Access::Read
                };
                storage.push(StorageBinding {
                    name,
                    group: rb.group,
                    binding: rb.binding,
                    access,
                    elem,
                });
            }
            AddressSpace::Uniform => {
                if let Some(first) = &uniform {
                    return Err(unsupported(format!(
                        "a kernel takes one uniform params block, and `{}` at @binding({}) is already one",
                        first.name, first.binding
                    )));
                }
                uniform = Some(UniformBinding {
                    name,
                    binding: rb.binding,
                    size: ty.size(module.to_ctx()),
                });
            }
            _ => {
                return Err(unsupported(
                    "pel binds storage arrays and one uniform block; textures and samplers are not supported"
                        .into(),
                ));
            }
        }
    }
    storage.sort_by_key(|b| b.binding);

    Ok(Reflection {
        entry: entry.to_owned(),
        workgroup_size: ep.workgroup_size,
        storage,
        uniform,
    })
}

fn invalid_shader(kernel: &str, at: Option<naga::SourceLocation>, message: String) -> Error {
    let (line, column) = at.map_or((0, 0), |l| (l.line_number, l.line_position));
    Error::InvalidShader {
        kernel: kernel.to_owned(),
        line,
        column,
        message: message.trim().to_owned(),
    }
}

fn elem_type(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<ElemType> {
    let scalar = |s: naga::Scalar| match (s.kind, s.width) {
        (ScalarKind::Float, 4) => Some(Scalar::F32),
        (ScalarKind::Uint, 4) => Some(Scalar::U32),
        (ScalarKind::Sint, 4) => Some(Scalar::I32),
        _ => None,
    };
    match module.types[ty].inner {
        TypeInner::Scalar(s) | TypeInner::Atomic(s) => Some(ElemType::scalar(scalar(s)?)),
        TypeInner::Vector { size, scalar: s } => {
            let lanes = match size {
                naga::VectorSize::Bi => 2,
                naga::VectorSize::Quad => 4,
                // vec3 has a 16-byte stride in arrays; no Rust array matches it.
                naga::VectorSize::Tri => return None,
            };
            Some(ElemType::Vector {
                scalar: scalar(s)?,
                lanes,
            })
        }
        TypeInner::Struct { span, .. } => Some(ElemType::Struct { size: span }),
        _ => None,
    }
}
