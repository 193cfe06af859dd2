//! Exact spellings of floating-point elements.
//!
//! Every float element is printed from its bit pattern so that parsing the text gives the same
//! bits back:
//!
//! - finite values as C99 hexadecimal floats of the value widened to fp64, in the style of
//!   C's `%a` (`0x1p+0`, `0x1.4p+3`, `-0x1.5p-17`, `0x0p+0`, `-0x0p+0`) — the spelling seen
//!   in model.mil files written by Apple's compiler (`fp16(0x1.5p-17)`, `fp16(0x1p-5)`);
//! - infinities as `inf` / `-inf`;
//! - the canonical quiet NaN of the type as `nan`, any other NaN as `nan(0xBITS)` with the
//!   element's whole bit pattern (sign included) in hex — an anekit spelling; Apple's is not
//!   known.
//!
//! Parsing also accepts decimal literals (`0.125`, `1e-5`, `3`); they are rounded to fp64
//! and then to the element type, each step to nearest-even (a decimal that lies extremely
//! close to a tie of the narrow type may round differently from a direct conversion).

use half::{bf16, f16};

use crate::types::DataType;

/// Bit width of a float type's element, or `None` for non-float types.
fn float_bits(dtype: DataType) -> Option<u32> {
    match dtype {
        DataType::Fp8E4M3Fn | DataType::Fp8E5M2 => Some(8),
        DataType::Fp16 | DataType::Bf16 => Some(16),
        DataType::Fp32 => Some(32),
        DataType::Fp64 => Some(64),
        _ => None,
    }
}

/// The canonical quiet NaN of a float type (printed as plain `nan`).
pub(crate) fn canonical_nan(dtype: DataType) -> u64 {
    match dtype {
        DataType::Fp8E4M3Fn => 0x7f,
        DataType::Fp8E5M2 => 0x7e,
        DataType::Fp16 => 0x7e00,
        DataType::Bf16 => 0x7fc0,
        DataType::Fp32 => 0x7fc0_0000,
        _ => 0x7ff8_0000_0000_0000,
    }
}

/// Whether `bits` is a NaN of `dtype`.
pub(crate) fn is_nan(dtype: DataType, bits: u64) -> bool {
    match dtype {
        DataType::Fp8E4M3Fn => bits & 0x7f == 0x7f,
        DataType::Fp8E5M2 => bits & 0x7c == 0x7c && bits & 0x3 != 0,
        DataType::Fp16 => bits & 0x7c00 == 0x7c00 && bits & 0x3ff != 0,
        DataType::Bf16 => bits & 0x7f80 == 0x7f80 && bits & 0x7f != 0,
        DataType::Fp32 => bits & 0x7f80_0000 == 0x7f80_0000 && bits & 0x7f_ffff != 0,
        _ => f64::from_bits(bits).is_nan(),
    }
}

/// The value of a non-NaN element of `dtype` with bit pattern `bits`, exactly, as fp64.
pub(crate) fn to_f64(dtype: DataType, bits: u64) -> f64 {
    match dtype {
        DataType::Fp8E4M3Fn => minifloat_to_f64(bits as u8, 4, 3, 7, false),
        DataType::Fp8E5M2 => minifloat_to_f64(bits as u8, 5, 2, 15, true),
        DataType::Fp16 => f16::from_bits(bits as u16).to_f64(),
        DataType::Bf16 => bf16::from_bits(bits as u16).to_f64(),
        DataType::Fp32 => f64::from(f32::from_bits(bits as u32)),
        _ => f64::from_bits(bits),
    }
}

/// Decode an 8-bit float with `e` exponent bits, `m` mantissa bits and `bias`. With
/// `has_inf` the all-ones exponent holds infinities (IEEE style, e5m2); without it only the
/// all-ones pattern is NaN (e4m3fn), which callers exclude before calling.
fn minifloat_to_f64(b: u8, e: u32, m: u32, bias: i32, has_inf: bool) -> f64 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((b >> m) & ((1 << e) - 1) as u8);
    let man = f64::from(b & ((1 << m) - 1) as u8);
    let max_exp = (1 << e) - 1;
    if has_inf && exp == max_exp {
        return if man == 0.0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    let scale = f64::from(1u32 << m);
    if exp == 0 {
        sign * man / scale * pow2(1 - bias)
    } else {
        sign * (1.0 + man / scale) * pow2(exp - bias)
    }
}

/// 2^e for the small exponents of the 8-bit formats (exact).
fn pow2(e: i32) -> f64 {
    ldexp(1.0, e)
}

/// `x · 2^e`, rounded once (like C's `scalbn`): intermediate steps stay normal, only the
/// final multiplication by a normal power of two can round.
fn ldexp(mut y: f64, mut n: i32) -> f64 {
    let p = |k: i32| f64::from_bits(((k + 1023) as u64) << 52);
    while n > 1023 {
        y *= p(1023);
        n -= 1023;
        if y.is_infinite() {
            return y;
        }
    }
    while n < -1022 {
        y *= p(-969);
        n += 969;
        if y == 0.0 {
            return y;
        }
    }
    y * p(n)
}

/// Append the spelling of a float element of `dtype` with bit pattern `bits`.
pub(crate) fn write_float(out: &mut String, dtype: DataType, bits: u64) {
    if is_nan(dtype, bits) {
        if bits == canonical_nan(dtype) {
            out.push_str("nan");
        } else {
            out.push_str(&format!("nan(0x{bits:x})"));
        }
        return;
    }
    let v = to_f64(dtype, bits);
    if v.is_infinite() {
        out.push_str(if v < 0.0 { "-inf" } else { "inf" });
        return;
    }
    write_hex_f64(out, v);
}

/// Append `v` (finite) as a C99 hexadecimal float in `%a` style.
pub(crate) fn write_hex_f64(out: &mut String, v: f64) {
    let bits = v.to_bits();
    if bits >> 63 != 0 {
        out.push('-');
    }
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let man = bits & ((1u64 << 52) - 1);
    if exp == 0 && man == 0 {
        out.push_str("0x0p+0");
        return;
    }
    let (lead, e) = if exp == 0 {
        ('0', -1022)
    } else {
        ('1', exp - 1023)
    };
    out.push_str("0x");
    out.push(lead);
    if man != 0 {
        let digits = format!("{man:013x}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('p');
    if e >= 0 {
        out.push('+');
    }
    out.push_str(&e.to_string());
}

/// Parse an unsigned numeric literal (`0x1.8p+3`, `0x10`, `1.5e-3`, `42`) as fp64.
/// Returns `None` when the text is not a number; hexadecimal literals with more than 16
/// significant digits are refused rather than rounded.
pub(crate) fn parse_unsigned_f64(text: &str) -> Option<f64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return parse_hex_f64(hex);
    }
    if text.is_empty()
        || !text
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    text.parse::<f64>().ok()
}

fn parse_hex_f64(hex: &str) -> Option<f64> {
    let (mantissa, exp) = match hex.find(['p', 'P']) {
        Some(i) => (hex.get(..i)?, hex.get(i + 1..)?),
        None => (hex, "0"),
    };
    let exp: i64 = {
        let digits = exp.strip_prefix('+').unwrap_or(exp);
        let body = digits.strip_prefix('-').unwrap_or(digits);
        if body.is_empty() || body.len() > 12 || !body.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()?
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (mantissa.get(..i)?, mantissa.get(i + 1..)?),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    // At most 16 significant hex digits (64 bits); further digits must be zeros.
    let mut m: u64 = 0;
    let mut significant = 0;
    let mut scale: i64 = 0;
    for c in int_part.chars() {
        let d = c.to_digit(16)?;
        if significant >= 16 {
            if d != 0 {
                return None;
            }
            scale += 4;
        } else if m != 0 || d != 0 {
            m = (m << 4) | u64::from(d);
            significant += 1;
        }
    }
    for c in frac_part.chars() {
        let d = c.to_digit(16)?;
        if significant >= 16 {
            if d != 0 {
                return None;
            }
            continue;
        }
        scale -= 4;
        if m != 0 || d != 0 {
            m = (m << 4) | u64::from(d);
            significant += 1;
        }
    }
    if m == 0 {
        return Some(0.0);
    }
    let e = exp.checked_add(scale)?.clamp(-5000, 5000) as i32;
    Some(ldexp(m as f64, e))
}

/// The bit pattern of `v` in float type `dtype`, rounded to nearest-even. `None` when a
/// finite `v` overflows the type (it would become infinite, or for e4m3fn, which has no
/// infinity, NaN).
pub(crate) fn from_f64(dtype: DataType, v: f64) -> Option<u64> {
    if v.is_nan() {
        return Some(canonical_nan(dtype));
    }
    let bits = match dtype {
        DataType::Fp8E4M3Fn => return fp8_from_f64(v, 4, 3, 7, false),
        DataType::Fp8E5M2 => return fp8_from_f64(v, 5, 2, 15, true),
        DataType::Fp16 => {
            let h = f16::from_f64(v);
            if h.is_infinite() && v.is_finite() {
                return None;
            }
            u64::from(h.to_bits())
        }
        DataType::Bf16 => {
            let h = bf16::from_f64(v);
            if h.is_infinite() && v.is_finite() {
                return None;
            }
            u64::from(h.to_bits())
        }
        DataType::Fp32 => {
            let f = v as f32;
            if f.is_infinite() && v.is_finite() {
                return None;
            }
            u64::from(f.to_bits())
        }
        _ => v.to_bits(),
    };
    Some(bits)
}

/// Nearest 8-bit float pattern to `v` (ties to an even pattern); `None` on overflow or for
/// infinities of a type without them.
fn fp8_from_f64(v: f64, e: u32, m: u32, bias: i32, has_inf: bool) -> Option<u64> {
    let negative = v.is_sign_negative();
    let sign: u8 = if negative { 0x80 } else { 0 };
    if v.is_infinite() {
        // e5m2: exponent all ones, mantissa zero.
        return has_inf.then_some(u64::from(sign | (((1u8 << e) - 1) << m)));
    }
    let a = v.abs();
    // Candidates are the non-negative finite patterns 0x00..=max, in increasing order.
    let max_pattern: u8 = if has_inf {
        (((1u8 << e) - 1) << m) - 1
    } else {
        0x7e
    };
    let value = |p: u8| minifloat_to_f64(p, e, m, bias, has_inf);
    let max = value(max_pattern);
    if a > max {
        let ulp = max - value(max_pattern - 1);
        if a >= max + ulp / 2.0 {
            return None;
        }
        return Some(u64::from(sign | max_pattern));
    }
    let mut best = 0u8;
    let mut best_err = f64::INFINITY;
    for p in 0..=max_pattern {
        let err = (value(p) - a).abs();
        if err < best_err || (err == best_err && p % 2 == 0) {
            best = p;
            best_err = err;
        }
    }
    Some(u64::from(sign | best))
}

/// Width in bits of one float element, for splitting little-endian bytes.
pub(crate) fn width(dtype: DataType) -> Option<u32> {
    float_bits(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: f64) -> String {
        let mut s = String::new();
        write_hex_f64(&mut s, v);
        s
    }

    #[test]
    fn hex_spelling_matches_c_percent_a() {
        // Expected strings are what glibc's printf("%a") gives for these doubles.
        assert_eq!(hex(1.0), "0x1p+0");
        assert_eq!(hex(10.0), "0x1.4p+3");
        assert_eq!(hex(-10.0), "-0x1.4p+3");
        assert_eq!(hex(0.0), "0x0p+0");
        assert_eq!(hex(-0.0), "-0x0p+0");
        assert_eq!(hex(0.125), "0x1p-3");
        assert_eq!(hex(f64::MIN_POSITIVE / 4.0), "0x0.4p-1022");
        assert_eq!(hex(0.1), "0x1.999999999999ap-4");
    }

    #[test]
    fn fp16_epsilon_prints_as_apple_writes_it() {
        // `fp16 epsilon = const()[..., val = fp16(0x1.5p-17)]` is layer-norm's 1e-5 in fp16.
        let bits = u64::from(f16::from_f64(1e-5).to_bits());
        let mut s = String::new();
        write_float(&mut s, DataType::Fp16, bits);
        assert_eq!(s, "0x1.5p-17");
    }

    #[test]
    fn hex_parse_inverts_print_for_every_fp16_and_fp8() {
        for dtype in [DataType::Fp16, DataType::Bf16] {
            for b in 0..=u16::MAX {
                let bits = u64::from(b);
                let mut s = String::new();
                write_float(&mut s, dtype, bits);
                let back = parse_signed(&s, dtype);
                assert_eq!(back, Some(bits), "{dtype} {bits:#x} printed {s}");
            }
        }
        for dtype in [DataType::Fp8E4M3Fn, DataType::Fp8E5M2] {
            for b in 0..=u8::MAX {
                let bits = u64::from(b);
                let mut s = String::new();
                write_float(&mut s, dtype, bits);
                let back = parse_signed(&s, dtype);
                assert_eq!(back, Some(bits), "{dtype} {bits:#x} printed {s}");
            }
        }
    }

    /// A test-only miniature of the parser's element reading.
    fn parse_signed(s: &str, dtype: DataType) -> Option<u64> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        if let Some(p) = body.strip_prefix("nan(0x") {
            return u64::from_str_radix(p.strip_suffix(')')?, 16).ok();
        }
        if body == "nan" {
            return Some(canonical_nan(dtype));
        }
        let v = if body == "inf" {
            f64::INFINITY
        } else {
            parse_unsigned_f64(body)?
        };
        from_f64(dtype, if neg { -v } else { v })
    }

    #[test]
    fn fp32_and_fp64_extremes_round_trip() {
        for v in [
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::EPSILON,
            1.0e-45, // smallest fp32 subnormal
            -3.5,
        ] {
            let bits = u64::from(v.to_bits());
            let mut s = String::new();
            write_float(&mut s, DataType::Fp32, bits);
            assert_eq!(parse_signed(&s, DataType::Fp32), Some(bits), "{s}");
        }
        for v in [f64::MIN_POSITIVE, f64::MAX, 5e-324, -1.0e-310, 1.0 / 3.0] {
            let bits = v.to_bits();
            let mut s = String::new();
            write_float(&mut s, DataType::Fp64, bits);
            assert_eq!(parse_signed(&s, DataType::Fp64), Some(bits), "{s}");
        }
    }

    #[test]
    fn decimal_and_overflow() {
        assert_eq!(
            from_f64(DataType::Fp16, parse_unsigned_f64("0.125").unwrap_or(0.0)),
            Some(0x3000)
        );
        assert_eq!(from_f64(DataType::Fp16, 70000.0), None);
        assert_eq!(from_f64(DataType::Fp16, 65519.0), Some(0x7bff));
        assert_eq!(from_f64(DataType::Fp8E4M3Fn, 448.0), Some(0x7e));
        assert_eq!(from_f64(DataType::Fp8E4M3Fn, 1000.0), None);
        assert_eq!(from_f64(DataType::Fp8E4M3Fn, f64::INFINITY), None);
        assert_eq!(parse_unsigned_f64("0x1.8p+1"), Some(3.0));
        assert_eq!(parse_unsigned_f64("0x.8p0"), Some(0.5));
        assert_eq!(parse_unsigned_f64("0x1.00000000000000001p0"), None);
        assert_eq!(parse_unsigned_f64("abc"), None);
    }
}
