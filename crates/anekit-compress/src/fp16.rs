//! fp32 → fp16 compute precision (placeholder until implemented).

use anekit_mil::Program;

use crate::error::Result;

/// Convert an fp32 program to fp16 compute precision; returns the number of converted ops.
pub fn convert_program(_program: &mut Program) -> Result<usize> {
    Ok(0)
}
