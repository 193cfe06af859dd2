//! fp32 → fp16 compute-precision conversion of fp32 ML Programs, as
//! `ct.convert(..., compute_precision=ct.precision.FLOAT16)` does (coremltools 9.0's
//! `add_fp16_cast` and the cleanup after it).
//!
//! The conversion is a MIL pass of the IR crate, [`anekit_mil::passes::fp16`] (its
//! documentation says what is converted and how it differs from coremltools);
//! `anekit optimize --fp16` runs the same pass. This module gives it this crate's error type,
//! for [`crate::compress_model`] (the `fp16` stage of a [`crate::Config`]).

use anekit_mil::Program;
pub use anekit_mil::passes::fp16::{
    FP16_MAX, FP16_RULES, Fp16Report, Fp16Rule, Fp16Skip, fp16_rule,
};

use crate::error::{CompressError, Result};

/// Convert `program` to fp16 compute precision; returns the number of converted ops
/// ([`convert`] gives the whole report).
pub fn convert_program(program: &mut Program) -> Result<usize> {
    Ok(convert(program)?.ops)
}

/// Convert `program` to fp16 compute precision and say what changed
/// ([`anekit_mil::passes::fp16::convert`]); errors ([`CompressError::Fp16`]) name the
/// function and op, and leave the program as it was.
pub fn convert(program: &mut Program) -> Result<Fp16Report> {
    anekit_mil::passes::fp16::convert(program).map_err(CompressError::Fp16)
}
