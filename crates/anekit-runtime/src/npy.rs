//! Reading and writing NumPy `.npy` files (format versions 1–3).
//!
//! Written here rather than taken from a crate because the crates available do not read
//! fp16, and because these files are untrusted input: the header is parsed strictly, the
//! element count is checked against the file size before anything is allocated, and errors
//! name the file and what was wrong.
//!
//! Format: `\x93NUMPY`, major, minor, header length (u16 for v1, u32 for v2/v3), then a
//! Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded
//! with spaces to a 64-byte boundary and ended by `\n`, then the raw data.

use std::path::Path;

use half::f16;
use ndarray::{ArrayD, IxDyn, ShapeBuilder};

use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;

const MAGIC: &[u8] = b"\x93NUMPY";
/// Refuse headers longer than this (numpy itself limits them to 10 000 bytes by default).
const MAX_HEADER: usize = 65_536;

fn bad(path: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Npy {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Read a `.npy` file into a tensor. f64 becomes f32, i64/i16 become i32 (values out of
/// range are an error), u16 becomes i32.
pub fn read(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let label = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| bad(&label, format!("cannot read: {e}")))?;
    parse(&bytes, &label)
}

/// Parse the content of a `.npy` file; `label` names it in errors.
pub fn parse(bytes: &[u8], label: &str) -> Result<Tensor> {
    if bytes.get(..6) != Some(MAGIC) {
        return Err(bad(label, "not a .npy file (no \\x93NUMPY magic)"));
    }
    let major = *bytes.get(6).ok_or_else(|| bad(label, "truncated header"))?;
    let (header_len, start) = match major {
        1 => {
            let b = bytes
                .get(8..10)
                .ok_or_else(|| bad(label, "truncated header"))?;
            (usize::from(u16::from_le_bytes([b[0], b[1]])), 10)
        }
        2 | 3 => {
            let b = bytes
                .get(8..12)
                .ok_or_else(|| bad(label, "truncated header"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(bad(label, format!("unsupported format version {v}"))),
    };
    if header_len > MAX_HEADER {
        return Err(bad(
            label,
            format!("header of {header_len} bytes is too long"),
        ));
    }
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad(label, "file ends inside the header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad(label, "header is not UTF-8"))?;
    let h = Header::parse(header).map_err(|m| bad(label, format!("header {header:?}: {m}")))?;
    let data = &bytes[start + header_len..];
    let count = h
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(label, format!("shape {:?} overflows", h.shape)))?;
    let need = count
        .checked_mul(h.kind.size())
        .ok_or_else(|| bad(label, format!("shape {:?} overflows", h.shape)))?;
    if data.len() < need {
        return Err(bad(
            label,
            format!(
                "shape {:?} of {} needs {need} bytes of data, the file has {}",
                h.shape,
                h.descr,
                data.len()
            ),
        ));
    }
    let data = &data[..need];
    let little = h.little_endian;
    let shape = IxDyn(&h.shape);
    macro_rules! load {
        ($t:ty, $n:literal, $conv:expr) => {{
            let v: Vec<$t> = data
                .chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    if !little {
                        a.reverse();
                    }
                    $conv(a)
                })
                .collect();
            arrange(v, shape.clone(), h.fortran_order).map_err(|m| bad(label, m))?
        }};
    }
    let range =
        |v: i64| i32::try_from(v).map_err(|_| bad(label, format!("value {v} does not fit int32")));
    Ok(match h.kind {
        Kind::F32 => Tensor::F32(load!(f32, 4, f32::from_le_bytes)),
        Kind::F64 => Tensor::F32(load!(f32, 8, |a| f64::from_le_bytes(a) as f32)),
        Kind::F16 => Tensor::F16(load!(f16, 2, f16::from_le_bytes)),
        Kind::I32 => Tensor::I32(load!(i32, 4, i32::from_le_bytes)),
        Kind::I16 => Tensor::I32(load!(i32, 2, |a| i32::from(i16::from_le_bytes(a)))),
        Kind::U16 => Tensor::I32(load!(i32, 2, |a| i32::from(u16::from_le_bytes(a)))),
        Kind::I64 => {
            let a: ArrayD<i64> = load!(i64, 8, i64::from_le_bytes);
            let v = a.iter().map(|&x| range(x)).collect::<Result<Vec<_>>>()?;
            Tensor::I32(
                ArrayD::from_shape_vec(a.raw_dim(), v).map_err(|e| bad(label, e.to_string()))?,
            )
        }
        Kind::I8 => Tensor::I8(load!(i8, 1, |a: [u8; 1]| a[0] as i8)),
        Kind::U8 => Tensor::U8(load!(u8, 1, |a: [u8; 1]| a[0])),
        Kind::Bool => Tensor::Bool(load!(bool, 1, |a: [u8; 1]| a[0] != 0)),
        Kind::Unicode(n) => {
            // Fixed-width UTF-32, padded with NULs (numpy drops trailing NULs).
            let width = n * 4;
            let mut v = Vec::with_capacity(count);
            for c in data.chunks_exact(width.max(1)).take(count) {
                let mut s = String::new();
                for u in c.chunks_exact(4) {
                    let mut a = [u[0], u[1], u[2], u[3]];
                    if !little {
                        a.reverse();
                    }
                    let cp = u32::from_le_bytes(a);
                    s.push(char::from_u32(cp).ok_or_else(|| {
                        bad(label, format!("{cp:#x} is not a Unicode scalar value"))
                    })?);
                }
                v.push(s.trim_end_matches('\0').to_string());
            }
            // `<U0`: every string empty.
            v.resize(count, String::new());
            Tensor::Str(arrange(v, shape.clone(), h.fortran_order).map_err(|m| bad(label, m))?)
        }
    })
}

fn arrange<T: Clone>(
    v: Vec<T>,
    shape: IxDyn,
    fortran: bool,
) -> std::result::Result<ArrayD<T>, String> {
    if fortran {
        ArrayD::from_shape_vec(shape.f(), v).map(|a| a.as_standard_layout().into_owned())
    } else {
        ArrayD::from_shape_vec(shape, v)
    }
    .map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    F16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    Bool,
    /// Unicode strings of this many UTF-32 code units (`<U3`).
    Unicode(usize),
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::I8 | Kind::U8 | Kind::Bool => 1,
            Kind::F16 | Kind::I16 | Kind::U16 => 2,
            Kind::F32 | Kind::I32 => 4,
            Kind::F64 | Kind::I64 => 8,
            Kind::Unicode(n) => n.saturating_mul(4),
        }
    }
}

struct Header {
    descr: String,
    kind: Kind,
    little_endian: bool,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    /// Parse the dict literal numpy writes (keys in any order, single or double quotes).
    fn parse(s: &str) -> std::result::Result<Header, String> {
        let s = s.trim().trim_end_matches('\n').trim();
        let body = s
            .strip_prefix('{')
            .and_then(|s| s.trim_end().strip_suffix('}'))
            .ok_or("not a dict")?;
        let mut descr = None;
        let mut fortran = None;
        let mut shape = None;
        let mut rest = body.trim();
        while !rest.is_empty() {
            let (key, after) = quoted(rest).ok_or("expected a quoted key")?;
            let after = after
                .trim_start()
                .strip_prefix(':')
                .ok_or("expected ':'")?
                .trim_start();
            rest = match key {
                "descr" => {
                    let (v, a) = quoted(after).ok_or("descr must be a string")?;
                    descr = Some(v.to_string());
                    a
                }
                "fortran_order" => {
                    if let Some(a) = after.strip_prefix("False") {
                        fortran = Some(false);
                        a
                    } else if let Some(a) = after.strip_prefix("True") {
                        fortran = Some(true);
                        a
                    } else {
                        return Err("fortran_order must be True or False".into());
                    }
                }
                "shape" => {
                    let inner = after.strip_prefix('(').ok_or("shape must be a tuple")?;
                    let end = inner.find(')').ok_or("unterminated shape")?;
                    let dims = inner[..end]
                        .split(',')
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(|d| {
                            d.trim_end_matches('L')
                                .parse::<usize>()
                                .map_err(|_| format!("bad dimension {d:?}"))
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    if dims.len() > 32 {
                        return Err(format!("rank {} is more than 32", dims.len()));
                    }
                    shape = Some(dims);
                    &inner[end + 1..]
                }
                k => return Err(format!("unknown key {k:?}")),
            };
            rest = rest.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        }
        let descr = descr.ok_or("no descr")?;
        let (order, code) = descr.split_at(descr.len().min(1));
        let little_endian = match order {
            "<" | "|" | "=" => true,
            ">" => false,
            _ => return Err(format!("unsupported descr {descr:?}")),
        };
        let kind = match code {
            "f2" => Kind::F16,
            "f4" => Kind::F32,
            "f8" => Kind::F64,
            "i1" => Kind::I8,
            "i2" => Kind::I16,
            "i4" => Kind::I32,
            "i8" => Kind::I64,
            "u1" => Kind::U8,
            "u2" => Kind::U16,
            "b1" => Kind::Bool,
            c if c.starts_with('U') && c[1..].parse::<usize>().is_ok_and(|n| n <= 1 << 20) => {
                Kind::Unicode(c[1..].parse().unwrap_or(0))
            }
            _ => return Err(format!("unsupported element type {descr:?}")),
        };
        Ok(Header {
            descr,
            kind,
            little_endian,
            fortran_order: fortran.ok_or("no fortran_order")?,
            shape: shape.ok_or("no shape")?,
        })
    }
}

/// The content of a leading quoted string and what follows it.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let end = s[1..].find(q)? + 1;
    Some((&s[1..end], &s[end + 1..]))
}

/// Encode a tensor as `.npy` (version 1.0, C order, little-endian). Strings become a
/// numpy unicode array (`<U` of the longest string); a dictionary is written as its values
/// (`<f8`, in key order; the keys are not kept — write them as JSON).
pub fn to_bytes(t: &Tensor) -> Vec<u8> {
    let width = match t {
        Tensor::Str(a) => a
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
            .max(1),
        _ => 0,
    };
    let unicode = format!("<U{width}");
    let descr = match t {
        Tensor::Str(_) => unicode.as_str(),
        Tensor::Dict(_) => "<f8",
        Tensor::F32(_) => "<f4",
        Tensor::F16(_) => "<f2",
        Tensor::I32(_) => "<i4",
        Tensor::I8(_) => "|i1",
        Tensor::U8(_) => "|u1",
        Tensor::Bool(_) => "|b1",
    };
    let shape = match t.shape() {
        [d] => format!("({d},)"),
        s => format!(
            "({})",
            s.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that magic + version + length + header is a multiple of 64, ending in '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.nbytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match t {
        Tensor::F32(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::F16(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::I32(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::I8(a) => a.iter().for_each(|v| out.push(*v as u8)),
        Tensor::U8(a) => out.extend(a.iter().copied()),
        Tensor::Bool(a) => out.extend(a.iter().map(|&v| u8::from(v))),
        Tensor::Str(a) => a.iter().for_each(|v| {
            let n = v.chars().count();
            v.chars()
                .for_each(|c| out.extend_from_slice(&u32::from(c).to_le_bytes()));
            out.resize(out.len() + (width - n) * 4, 0);
        }),
        Tensor::Dict(d) => d
            .values()
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
    }
    out
}

/// Write a tensor to a `.npy` file.
pub fn write(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(t))
        .map_err(|e| bad(&path.display().to_string(), format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `numpy.save` of `np.arange(6, dtype=np.float32).reshape(2, 3)` (numpy 2.x, header
    /// padded to 128 bytes).
    fn numpy_bytes() -> Vec<u8> {
        let mut b =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
                .to_vec();
        b.resize(127, b' ');
        b.push(b'\n');
        for i in 0..6 {
            b.extend_from_slice(&(i as f32).to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_numpy_output_and_round_trips() {
        let t = parse(&numpy_bytes(), "x.npy").unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(
            t.to_f32().iter().copied().collect::<Vec<_>>(),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(to_bytes(&t), numpy_bytes(), "byte-identical to numpy.save");
        for t in [
            Tensor::F16(ArrayD::from_elem(IxDyn(&[3]), f16::from_f32(1.5))),
            Tensor::I32(ArrayD::from_elem(IxDyn(&[]), 7)),
            Tensor::Bool(ArrayD::from_elem(IxDyn(&[2, 1]), true)),
            Tensor::I8(ArrayD::from_elem(IxDyn(&[0, 4]), -3)),
        ] {
            assert_eq!(parse(&to_bytes(&t), "t").unwrap(), t);
        }
    }

    #[test]
    fn fortran_order_and_big_endian() {
        let mut b =
            b"\x93NUMPY\x01\x00\x46\x00{'descr': '>i4', 'fortran_order': True, 'shape': (2, 2), }"
                .to_vec();
        b.resize(10 + 0x46 - 1, b' ');
        b.push(b'\n');
        for v in [1i32, 2, 3, 4] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let t = parse(&b, "f.npy").unwrap();
        // Column-major [1, 2, 3, 4] is [[1, 3], [2, 4]].
        assert_eq!(t, Tensor::i32(&[2, 2], vec![1, 3, 2, 4]).unwrap());
    }

    /// A version 1.0 file with `header` (unpadded) and `data`.
    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn hostile_files_are_errors() {
        let good = numpy_bytes();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"PK\x03\x04".to_vec(), "magic"),
            (good[..50].to_vec(), "header"),
            (good[..130].to_vec(), "needs 24 bytes"),
            (
                good.iter()
                    .map(|&c| if c == b'3' { b'9' } else { c })
                    .collect(),
                "needs",
            ),
            (
                with_header(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }",
                    &[],
                ),
                "overflows",
            ),
            (
                with_header(
                    "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
                    &[0; 16],
                ),
                "unsupported",
            ),
        ];
        for (bytes, needle) in cases {
            let e = parse(&bytes, "bad.npy").unwrap_err().to_string();
            assert!(e.contains("bad.npy") && e.contains(needle), "{e}");
        }
    }
}
