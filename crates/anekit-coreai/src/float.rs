//! Decimal rendering of IEEE floats exactly as MLIR prints float attributes
//! (`printFloatValue` in mlir/lib/IR/AsmPrinter.cpp over `APFloat::toString` in
//! llvm/lib/Support/APFloat.cpp): first `%.6e`-like with trailing zeros kept, used when it
//! parses back to the same bits; else APFloat's default shortest-precision form when that
//! contains a `.`; else the bits in hex (`0x4CEB79A3`). Implemented from the published
//! algorithm with exact big-integer arithmetic (no float formatting of the platform).

/// A floating-point format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatFormat {
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE binary32.
    F32,
    /// IEEE binary64.
    F64,
}

impl FloatFormat {
    /// The format of a `width`-bit float attribute (16 is IEEE half).
    pub fn for_width(width: u32) -> Option<Self> {
        match width {
            16 => Some(Self::F16),
            32 => Some(Self::F32),
            64 => Some(Self::F64),
            _ => None,
        }
    }

    /// (precision in bits incl. the implicit one, exponent bits)
    fn params(self) -> (u32, u32) {
        match self {
            Self::F16 => (11, 5),
            Self::BF16 => (8, 8),
            Self::F32 => (24, 8),
            Self::F64 => (53, 11),
        }
    }

    /// Total width in bits.
    pub fn width(self) -> u32 {
        let (p, e) = self.params();
        p + e
    }

    /// The value of `bits` as f64 (exact for every format here).
    pub fn to_f64(self, bits: u64) -> f64 {
        match self {
            Self::F16 => half::f16::from_bits(bits as u16).to_f64(),
            Self::BF16 => half::bf16::from_bits(bits as u16).to_f64(),
            Self::F32 => f64::from(f32::from_bits(bits as u32)),
            Self::F64 => f64::from_bits(bits),
        }
    }

    /// The bits of the value nearest to decimal `s` (None if it does not parse).
    fn parse_bits(self, s: &str) -> Option<u64> {
        Some(match self {
            Self::F64 => s.parse::<f64>().ok()?.to_bits(),
            Self::F32 => u64::from(s.parse::<f32>().ok()?.to_bits()),
            Self::F16 => u64::from(half::f16::from_f64(s.parse::<f64>().ok()?).to_bits()),
            Self::BF16 => u64::from(half::bf16::from_f64(s.parse::<f64>().ok()?).to_bits()),
        })
    }
}

/// Arbitrary-precision unsigned integer, little-endian base 2^32 (enough for the exact
/// decimal expansion of any f64).
#[derive(Clone, Debug)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Self {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }
    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
    fn bits(&self) -> u32 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u32 - 1) * 32 + (32 - top.leading_zeros()),
        }
    }
    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for d in &mut self.0 {
            let v = u64::from(*d) * u64::from(m) + carry;
            *d = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }
    fn shl(&mut self, n: u32) {
        for _ in 0..n / 32 {
            self.0.insert(0, 0);
        }
        let r = n % 32;
        if r != 0 {
            let mut carry = 0u32;
            for d in &mut self.0 {
                let v = (*d << r) | carry;
                carry = *d >> (32 - r);
                *d = v;
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        self.trim();
    }
    /// Divide in place by `d`, returning the remainder.
    fn divrem_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for x in self.0.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*x);
            *x = (v / u64::from(d)) as u32;
            rem = v % u64::from(d);
        }
        self.trim();
        rem as u32
    }
}

/// APFloat::toString(Str, FormatPrecision, FormatMaxPadding, TruncateZero).
fn ap_to_string(
    fmt: FloatFormat,
    bits: u64,
    precision: u32,
    max_padding: u32,
    truncate_zero: bool,
) -> String {
    let (prec, ebits) = fmt.params();
    let width = fmt.width();
    let sign = (bits >> (width - 1)) & 1 == 1;
    let exp_field = (bits >> (prec - 1)) & ((1u64 << ebits) - 1);
    let frac = bits & ((1u64 << (prec - 1)) - 1);
    let bias = (1i64 << (ebits - 1)) - 1;
    let mut out = String::new();
    if exp_field == (1u64 << ebits) - 1 {
        return if frac != 0 {
            "NaN".into()
        } else if sign {
            "-Inf".into()
        } else {
            "+Inf".into()
        };
    }
    if sign {
        out.push('-');
    }
    if exp_field == 0 && frac == 0 {
        if max_padding == 0 {
            if truncate_zero {
                out.push_str("0.0E+0");
            } else {
                out.push_str("0.0");
                for _ in 1..precision.max(1) {
                    out.push('0');
                }
                out.push_str("e+00");
            }
        } else {
            out.push('0');
        }
        return out;
    }
    // value = significand * 2^exp with the significand as an integer of `prec` bits.
    let (mut significand, mut exp) = if exp_field == 0 {
        (frac, 1 - bias - (i64::from(prec) - 1))
    } else {
        (
            frac | (1u64 << (prec - 1)),
            exp_field as i64 - bias - (i64::from(prec) - 1),
        )
    };
    let precision = if precision == 0 {
        2 + prec * 59 / 196
    } else {
        precision
    };
    let tz = significand.trailing_zeros();
    exp += i64::from(tz);
    significand >>= tz;
    let mut sig = Big::from_u64(significand);
    if exp > 0 {
        sig.shl(exp as u32);
        exp = 0;
    } else if exp < 0 {
        for _ in 0..(-exp) {
            sig.mul_small(5);
        }
    }
    // AdjustToPrecision on the integer: drop decimal digits that cannot matter.
    let bits_now = sig.bits();
    let bits_required = (precision * 196).div_ceil(59);
    if bits_now > bits_required {
        let tens = (bits_now - bits_required) * 59 / 196;
        if tens > 0 {
            exp += i64::from(tens);
            for _ in 0..tens {
                sig.divrem_small(10);
            }
        }
    }
    // Digits, least significant first, skipping trailing zeros.
    let mut buffer: Vec<u8> = Vec::new();
    let mut in_trail = true;
    while !sig.is_zero() {
        let d = sig.divrem_small(10) as u8;
        if in_trail && d == 0 {
            exp += 1;
        } else {
            buffer.push(b'0' + d);
            in_trail = false;
        }
    }
    // AdjustToPrecision on the digits (round half up).
    let n = buffer.len();
    if n > precision as usize {
        let mut first = n - precision as usize;
        if buffer[first - 1] < b'5' {
            while first < n && buffer[first] == b'0' {
                first += 1;
            }
            exp += first as i64;
            buffer.drain(..first);
        } else {
            let mut i = first;
            while i != n {
                if buffer[i] == b'9' {
                    first += 1;
                    i += 1;
                } else {
                    buffer[i] += 1;
                    break;
                }
            }
            if first == n {
                exp += first as i64;
                buffer.clear();
                buffer.push(b'1');
            } else {
                exp += first as i64;
                buffer.drain(..first);
            }
        }
    }
    let nd = buffer.len();
    let digit = |i: usize| buffer[nd - 1 - i] as char;
    let scientific = if max_padding == 0 {
        true
    } else if exp >= 0 {
        exp as u64 > u64::from(max_padding) || nd as u64 + exp as u64 > u64::from(precision)
    } else {
        let msd = exp + nd as i64 - 1;
        msd < 0 && (-msd) as u64 > u64::from(max_padding)
    };
    if scientific {
        exp += nd as i64 - 1;
        out.push(digit(0));
        out.push('.');
        if nd == 1 && truncate_zero {
            out.push('0');
        } else {
            for i in 1..nd {
                out.push(digit(i));
            }
        }
        if !truncate_zero && precision as usize > nd - 1 {
            for _ in 0..(precision as usize - nd + 1) {
                out.push('0');
            }
        }
        out.push(if truncate_zero { 'E' } else { 'e' });
        out.push(if exp >= 0 { '+' } else { '-' });
        let e = exp.unsigned_abs().to_string();
        if !truncate_zero && e.len() < 2 {
            out.push('0');
        }
        out.push_str(&e);
        return out;
    }
    if exp >= 0 {
        for i in 0..nd {
            out.push(digit(i));
        }
        for _ in 0..exp {
            out.push('0');
        }
        return out;
    }
    let whole = exp + nd as i64;
    let mut i = 0usize;
    if whole > 0 {
        while i < whole as usize {
            out.push(digit(i));
            i += 1;
        }
        out.push('.');
    } else {
        out.push_str("0.");
        for _ in 0..(-whole) {
            out.push('0');
        }
    }
    while i < nd {
        out.push(digit(i));
        i += 1;
    }
    out
}

/// The float with `bits` in `fmt`, as MLIR prints a float attribute value.
pub fn mlir_float(fmt: FloatFormat, bits: u64) -> String {
    let (prec, ebits) = fmt.params();
    let exp_field = (bits >> (prec - 1)) & ((1u64 << ebits) - 1);
    let special = exp_field == (1u64 << ebits) - 1;
    if !special {
        let s = ap_to_string(fmt, bits, 6, 0, false);
        if fmt.parse_bits(&s) == Some(bits) {
            return s;
        }
        let s = ap_to_string(fmt, bits, 0, 3, true);
        if s.contains('.') {
            return s;
        }
    }
    format!("0x{:0width$X}", bits, width = (fmt.width() / 4) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by coreai-core's MLIR (the `float` serialization attribute).
    #[test]
    fn matches_mlir() {
        let f32s: [(f32, &str); 22] = [
            (1.0, "1.000000e+00"),
            (0.5, "5.000000e-01"),
            (-2.5, "-2.500000e+00"),
            (100.0, "1.000000e+02"),
            (1000.0, "1.000000e+03"),
            (1234.5, "1.234500e+03"),
            (1.0e4, "1.000000e+04"),
            (123456789.0, "0x4CEB79A3"),
            (0.001, "1.000000e-03"),
            (0.0001, "9.99999974E-5"),
            (std::f32::consts::PI, "3.14159274"),
            (1.0e-10, "1.000000e-10"),
            (0.0, "0.000000e+00"),
            (-0.0, "-0.000000e+00"),
            (65504.0, "6.550400e+04"),
            (1.0e30, "1.000000e+30"),
            (0.1, "1.000000e-01"),
            (7.0, "7.000000e+00"),
            (16.0, "1.600000e+01"),
            (2048.0, "2.048000e+03"),
            (99999.0, "9.999900e+04"),
            (1.0 / 3.0, "0.333333343"),
        ];
        for (v, want) in f32s {
            assert_eq!(
                mlir_float(FloatFormat::F32, u64::from(v.to_bits())),
                want,
                "{v}"
            );
        }
        assert_eq!(
            mlir_float(FloatFormat::F32, u64::from(1.0e-5f32.to_bits())),
            "9.99999974E-6"
        );
        let h = |v: f64| u64::from(half::f16::from_f64(v).to_bits());
        assert_eq!(mlir_float(FloatFormat::F16, h(0.1)), "9.997550e-02");
        assert_eq!(mlir_float(FloatFormat::F16, h(1.5)), "1.500000e+00");
        assert_eq!(
            mlir_float(FloatFormat::F64, 0.1f64.to_bits()),
            "1.000000e-01"
        );
        assert_eq!(
            mlir_float(FloatFormat::F64, 1.0e-5f64.to_bits()),
            "1.000000e-05"
        );
    }
}
