//! Comparing an output with its expected values: the one rule of every case runner.
//!
//! Element-wise, `|got − expected| ≤ atol + rtol·|expected|`, with the expected value first
//! rounded to the output's float precision (expected values travel through JSON as
//! decimals); NaN where NaN is expected and nowhere else; infinities exactly. An integer expected tensor (a declared integer dtype, or, without a dtype, data
//! written as JSON integers) needs an integer or boolean output.

use anekit_mil::types::DataType;
use anekit_runtime::Tensor;
use half::f16;

use crate::case::TensorData;

/// The shape and values of a numeric tensor, and whether it is an integer or boolean one;
/// `None` for strings and dictionaries.
pub fn numbers(t: &Tensor) -> Option<(Vec<usize>, Vec<f64>, bool)> {
    let shape = t.shape().to_vec();
    Some(match t {
        Tensor::F32(a) => (shape, a.iter().map(|&x| f64::from(x)).collect(), false),
        Tensor::F16(a) => (
            shape,
            a.iter().map(|x| f64::from(x.to_f32())).collect(),
            false,
        ),
        Tensor::I32(a) => (shape, a.iter().map(|&x| f64::from(x)).collect(), true),
        Tensor::I8(a) => (shape, a.iter().map(|&x| f64::from(x)).collect(), true),
        Tensor::U8(a) => (shape, a.iter().map(|&x| f64::from(x)).collect(), true),
        Tensor::Bool(a) => (
            shape,
            a.iter().map(|&x| f64::from(u8::from(x))).collect(),
            true,
        ),
        Tensor::Str(_) | Tensor::Dict(_) => return None,
    })
}

/// Compare `got` with `want` within `atol` / `rtol`; the error names the first element
/// out of tolerance and how many are. `check_dtype: false` skips the integer-output check
/// (outputs whose declared type is a stand-in: a case's `untyped_outputs`).
pub fn compare(
    got: &Tensor,
    want: &TensorData,
    atol: f64,
    rtol: f64,
    check_dtype: bool,
) -> Result<(), String> {
    let Some((shape, g, int)) = numbers(got) else {
        return Err(format!("a {} output, expected numbers", got.dtype()));
    };
    if shape != want.shape {
        return Err(format!("shape {shape:?}, expected {:?}", want.shape));
    }
    let want_int = match want.dtype.as_deref().and_then(DataType::from_name) {
        Some(d) => !d.is_float(),
        None => want.data.integers,
    };
    if check_dtype && want_int && !int {
        return Err(format!(
            "a {} output, expected an integer tensor",
            got.dtype()
        ));
    }
    if g.len() != want.data.values.len() {
        return Err(format!(
            "{} values, expected {}",
            g.len(),
            want.data.values.len()
        ));
    }
    let round = |b: f64| match got {
        Tensor::F32(_) => f64::from(b as f32),
        Tensor::F16(_) => f64::from(f16::from_f64(b).to_f32()),
        _ => b,
    };
    let mut bad = 0usize;
    let mut first = None;
    for (k, (&a, &b)) in g.iter().zip(&want.data.values).enumerate() {
        let b = round(b);
        let ok = if b.is_nan() {
            a.is_nan()
        } else if a.is_nan() {
            false
        } else if b.is_infinite() {
            a == b
        } else {
            (a - b).abs() <= atol + rtol * b.abs()
        };
        if !ok {
            bad += 1;
            first.get_or_insert((k, a, b));
        }
    }
    match first {
        None => Ok(()),
        Some((k, a, b)) => Err(format!(
            "{bad} of {} elements out of tolerance; element {k}: got {a}, expected {b} \
             (atol {atol:e}, rtol {rtol:e})",
            g.len()
        )),
    }
}
