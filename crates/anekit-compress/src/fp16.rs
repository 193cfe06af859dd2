//! fp32 → fp16 compute-precision conversion of fp32 models (coremltools'
//! `compute_precision=FLOAT16`). Not implemented yet: asking for it is an error rather than
//! a silent no-op.

use anekit_mil::Program;

use crate::error::{CompressError, Result};

/// Convert an fp32 program to fp16 compute precision; returns the number of converted ops.
/// Currently always an error (see the module documentation).
pub fn convert_program(_program: &mut Program) -> Result<usize> {
    Err(CompressError::Unsupported(
        "fp16 conversion of fp32 models is not implemented yet".into(),
    ))
}
