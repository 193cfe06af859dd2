//! The pass manager and standard passes: program-to-program rewrites.
//!
//! A [`Pass`] rewrites a [`Program`] in place and says how many changes it made. A
//! [`PassManager`] runs passes in order and, unless told otherwise, validates the program
//! after each one ([`crate::validate::check`]), so a pass that breaks the program is named
//! in the error instead of producing a model Core ML rejects.
//!
//! Standard passes (semantics-preserving, usable by any part of anekit):
//! - [`DeadCodeElimination`]: drop ops none of whose outputs is used (side-effecting ops
//!   such as `write_state` are kept);
//! - [`RemoveNoOps`]: drop `identity`, a `reshape` to the same shape, a `transpose` by the
//!   identity permutation, a `cast` to the same type, and fold `transpose(transpose(x))`.
//!
//! Conversions (change results within a documented precision):
//! - [`Fp16ComputePrecision`] ([`fp16`]): fp32 → fp16 compute precision of an fp32 program,
//!   coremltools 9.0's `add_fp16_cast` and its cleanup; inputs, outputs and states keep
//!   their names and types.
//!
//! Helpers for writing passes: [`replace_uses`], [`used_names`], [`unique_name`].

mod dce;
pub mod fp16;
mod noop;

use std::collections::{BTreeSet, HashSet};

pub use dce::DeadCodeElimination;
pub use fp16::Fp16ComputePrecision;
pub use noop::RemoveNoOps;

use crate::error::{MilError, Result};
use crate::program::{Binding, Block, Program};
use crate::validate;

/// A program rewrite.
pub trait Pass {
    /// A short name (`dead-code-elimination`).
    fn name(&self) -> &str;
    /// Rewrite `program`; returns the number of changes made.
    fn run(&self, program: &mut Program) -> Result<usize>;
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PassRun {
    /// The pass.
    pub pass: String,
    /// Changes it made.
    pub changes: usize,
}

/// Runs passes in order.
#[derive(Default)]
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    skip_validation: bool,
}

impl std::fmt::Debug for PassManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassManager")
            .field(
                "passes",
                &self
                    .passes
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("skip_validation", &self.skip_validation)
            .finish()
    }
}

impl PassManager {
    /// An empty pass manager that validates after every pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a pass.
    pub fn add(&mut self, pass: impl Pass + 'static) -> &mut Self {
        self.passes.push(Box::new(pass));
        self
    }

    /// Do not validate between passes (for passes run on programs that do not validate to
    /// begin with).
    pub fn without_validation(&mut self) -> &mut Self {
        self.skip_validation = true;
        self
    }

    /// The names of the passes, in order.
    pub fn names(&self) -> Vec<&str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Run every pass on `program`. A program that validated before a pass must validate
    /// after it; otherwise the error names the pass and the first problem.
    pub fn run(&self, program: &mut Program) -> Result<Vec<PassRun>> {
        let check = !self.skip_validation && validate::check(program).diagnostics.is_empty();
        let mut runs = Vec::with_capacity(self.passes.len());
        for p in &self.passes {
            let changes = p.run(program)?;
            tracing::debug!(pass = p.name(), changes, "pass ran");
            if check && changes > 0 {
                let report = validate::check(program);
                if let Some(d) = report.diagnostics.first() {
                    return Err(MilError::invalid(
                        format!("pass {}", p.name()),
                        format!("left an invalid program: {d}"),
                    ));
                }
            }
            runs.push(PassRun {
                pass: p.name().to_string(),
                changes,
            });
        }
        Ok(runs)
    }
}

/// Replace every use of value `from` by `to` in `block` and its nested blocks (operation
/// inputs and block outputs). Returns the number of replacements.
pub fn replace_uses(block: &mut Block, from: &str, to: &str) -> usize {
    let mut n = 0;
    for op in &mut block.operations {
        for arg in op.inputs.values_mut() {
            for b in &mut arg.0 {
                if let Binding::Name(name) = b
                    && name == from
                {
                    *name = to.to_string();
                    n += 1;
                }
            }
        }
        for b in &mut op.blocks {
            // A nested block that redefines the name shadows it.
            if b.inputs.iter().any(|i| i.name == from) {
                continue;
            }
            n += replace_uses(b, from, to);
        }
    }
    for o in &mut block.outputs {
        if o == from {
            *o = to.to_string();
            n += 1;
        }
    }
    n
}

/// Every value name used in `block` (op inputs, nested blocks, block outputs).
pub fn used_names(block: &Block) -> HashSet<String> {
    let mut used = HashSet::new();
    collect_uses(block, &mut used);
    used
}

fn collect_uses(block: &Block, used: &mut HashSet<String>) {
    collect_uses_of_ops(&block.operations, used);
    used.extend(block.outputs.iter().cloned());
}

/// Names used by `ops` (their inputs, and everything their nested blocks use).
pub(crate) fn collect_uses_of_ops(ops: &[crate::Operation], used: &mut HashSet<String>) {
    for op in ops {
        for arg in op.inputs.values() {
            for b in &arg.0 {
                if let Binding::Name(n) = b {
                    used.insert(n.clone());
                }
            }
        }
        for b in &op.blocks {
            collect_uses(b, used);
        }
    }
}

/// Every name defined in `block` and its nested blocks.
pub fn defined_names(block: &Block) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(b: &Block, out: &mut BTreeSet<String>) {
        out.extend(b.inputs.iter().map(|i| i.name.clone()));
        for op in &b.operations {
            out.extend(op.outputs.iter().map(|o| o.name.clone()));
            for nb in &op.blocks {
                walk(nb, out);
            }
        }
    }
    walk(block, &mut out);
    out
}

/// A name starting with `base` that is not in `taken`; the result is added to `taken`.
pub fn unique_name(base: &str, taken: &mut BTreeSet<String>) -> String {
    let mut name = base.to_string();
    let mut i = 0u64;
    while taken.contains(&name) {
        i += 1;
        name = format!("{base}_{i}");
    }
    taken.insert(name.clone());
    name
}

/// Run `f` on the block that runs of every function.
pub fn for_each_block(
    program: &mut Program,
    mut f: impl FnMut(&mut Block, &[crate::NamedValueType]) -> Result<usize>,
) -> Result<usize> {
    let mut n = 0;
    for func in program.functions.values_mut() {
        let inputs = func.inputs.clone();
        if let Some(b) = func.block_mut() {
            n += f(b, &inputs)?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
