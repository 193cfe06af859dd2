//! Dead-code elimination.

use std::collections::HashSet;

use super::{Pass, collect_uses_of_ops, for_each_block};
use crate::error::Result;
use crate::program::{Block, Operation, Program};

/// Drops ops none of whose outputs is used, in every block, until nothing changes.
/// Ops with effects beyond their outputs (state writes, random ops;
/// [`crate::ops::effect`]) are kept.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeadCodeElimination;

fn has_side_effects(op: &Operation) -> bool {
    !crate::ops::effect(&op.op_type).removable()
}

fn sweep(block: &mut Block) -> usize {
    let mut removed = 0;
    loop {
        let mut used: HashSet<String> = block.outputs.iter().cloned().collect();
        collect_uses_of_ops(&block.operations, &mut used);
        let before = block.operations.len();
        block
            .operations
            .retain(|op| has_side_effects(op) || op.outputs.iter().any(|o| used.contains(&o.name)));
        let n = before - block.operations.len();
        removed += n;
        // nested blocks
        for op in &mut block.operations {
            for b in &mut op.blocks {
                removed += sweep(b);
            }
        }
        if n == 0 {
            return removed;
        }
    }
}

impl Pass for DeadCodeElimination {
    fn name(&self) -> &str {
        "dead-code-elimination"
    }

    fn run(&self, program: &mut Program) -> Result<usize> {
        for_each_block(program, |b, _| Ok(sweep(b)))
    }
}
