//! Constant folding of small shape computations.
//!
//! Converted graphs compute padding sizes, shapes and index vectors with ordinary ops on
//! constants (`slice` of a constant, `concat` of constants, `modulo` of an index range...).
//! MIL wants such operands as constants, so the translation evaluates these ops on the
//! host when every operand is a small constant ([`MAX_ELEMENTS`]), with the op's own
//! semantics (C-style integer division and remainder, numpy broadcasting, the `slice` index
//! rules of the `aicode` documentation).

use bytes::Bytes;

use crate::ir::Scalar;
use crate::konst::Konst;

/// The most elements an operand or result of a folded op may have.
pub const MAX_ELEMENTS: u64 = 4096;

/// A small host tensor (values as f64: exact for the integers shapes use).
#[derive(Debug, Clone)]
struct H {
    shape: Vec<usize>,
    v: Vec<f64>,
}

fn host(k: &Konst) -> Option<H> {
    let n = k.count()?;
    if n > MAX_ELEMENTS {
        return None;
    }
    let float = matches!(
        k.scalar,
        Scalar::F32 | Scalar::F64 | Scalar::F16 | Scalar::BF16
    );
    Some(H {
        shape: k.shape.iter().map(|&d| d as usize).collect(),
        v: (0..n as usize)
            .map(|i| {
                if float {
                    k.f64_at(i)
                } else {
                    k.i64_at(i) as f64
                }
            })
            .collect(),
    })
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
    }
    idx
}

/// Element of `h` for output index `out` under numpy broadcasting.
fn bcast_at(h: &H, out: &[usize]) -> f64 {
    let off = out.len() - h.shape.len();
    let st = strides(&h.shape);
    let mut flat = 0;
    for (d, &n) in h.shape.iter().enumerate() {
        let i = if n == 1 { 0 } else { out[off + d] };
        flat += i * st[d];
    }
    h.v.get(flat).copied().unwrap_or(0.0)
}

fn bcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let x = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                1
            };
            let y = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                1
            };
            match (x, y) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

fn is_int(s: Scalar) -> bool {
    matches!(s, Scalar::SInt(_) | Scalar::UInt(_) | Scalar::Bool)
}

fn encode(s: Scalar, shape: Vec<usize>, v: &[f64]) -> Option<Konst> {
    let mut data = Vec::with_capacity(v.len() * 4);
    for &x in v {
        match s {
            Scalar::F32 => data.extend_from_slice(&(x as f32).to_le_bytes()),
            Scalar::F64 => data.extend_from_slice(&x.to_le_bytes()),
            Scalar::F16 => data.extend_from_slice(&half::f16::from_f64(x).to_le_bytes()),
            Scalar::BF16 => data.extend_from_slice(&half::bf16::from_f64(x).to_le_bytes()),
            Scalar::Bool => data.push(u8::from(x != 0.0)),
            Scalar::SInt(64) | Scalar::UInt(64) => {
                data.extend_from_slice(&(x as i64).to_le_bytes())
            }
            Scalar::SInt(32) | Scalar::UInt(32) => {
                data.extend_from_slice(&(x as i64 as i32).to_le_bytes())
            }
            Scalar::SInt(16) | Scalar::UInt(16) => {
                data.extend_from_slice(&(x as i64 as i16).to_le_bytes())
            }
            Scalar::SInt(8) | Scalar::UInt(8) => data.push(x as i64 as i8 as u8),
            _ => return None,
        }
    }
    Konst::new(
        s,
        shape.iter().map(|&d| d as u64).collect(),
        Bytes::from(data),
        false,
    )
    .ok()
}

fn norm(ax: f64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = ax as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

/// Fold op `base` (the op name without prefix, `broadcasting_` and version) over constant
/// operands `a`, giving a constant of element type `out`; `combiner` is the region op of a
/// `reduce`. `None`: not foldable (the op is then translated).
pub fn fold(base: &str, a: &[&Konst], out: Scalar, combiner: Option<&str>) -> Option<Konst> {
    let h: Vec<H> = a.iter().map(|k| host(k)).collect::<Option<_>>()?;
    let int_out = is_int(out);
    let binary = |f: &dyn Fn(f64, f64) -> f64| -> Option<Konst> {
        let [x, y] = h.as_slice() else { return None };
        let shape = bcast_shape(&x.shape, &y.shape)?;
        let n: usize = shape.iter().product();
        if n as u64 > MAX_ELEMENTS {
            return None;
        }
        let v: Vec<f64> = (0..n)
            .map(|i| {
                let idx = unravel(i, &shape);
                f(bcast_at(x, &idx), bcast_at(y, &idx))
            })
            .collect();
        encode(out, shape, &v)
    };
    let b = |x: bool| f64::from(u8::from(x));
    match base {
        "add" => binary(&|x, y| x + y),
        "sub" => binary(&|x, y| x - y),
        "mul" => binary(&|x, y| x * y),
        "divide" => binary(&|x, y| {
            if int_out {
                if y == 0.0 { 0.0 } else { (x / y).trunc() }
            } else {
                x / y
            }
        }),
        "floor_divide" => binary(&|x, y| {
            if y == 0.0 && int_out {
                0.0
            } else {
                (x / y).floor()
            }
        }),
        "modulo" => binary(&|x, y| {
            if y == 0.0 {
                if int_out { 0.0 } else { f64::NAN }
            } else {
                x - (x / y).trunc() * y
            }
        }),
        "maximum" => binary(&|x, y| x.max(y)),
        "minimum" => binary(&|x, y| x.min(y)),
        "pow" => binary(&|x, y| x.powf(y)),
        "equal" => binary(&|x, y| b(x == y)),
        "not_equal" => binary(&|x, y| b(x != y)),
        "greater" => binary(&|x, y| b(x > y)),
        "logical_and" | "bitwise_and" if out == Scalar::Bool => {
            binary(&|x, y| b(x != 0.0 && y != 0.0))
        }
        "logical_or" | "bitwise_or" if out == Scalar::Bool => {
            binary(&|x, y| b(x != 0.0 || y != 0.0))
        }
        "slice" => {
            let [x, start, end, stride] = h.as_slice() else {
                return None;
            };
            let r = x.shape.len();
            if start.v.len() != r || end.v.len() != r || stride.v.len() != r {
                return None;
            }
            let mut begin = vec![0i64; r];
            let mut step = vec![0i64; r];
            let mut shape = vec![0usize; r];
            for d in 0..r {
                let n = x.shape[d] as i64;
                let s = stride.v[d] as i64;
                if s == 0 {
                    return None;
                }
                let (lo, hi) = if s > 0 { (0, n) } else { (0, n - 1) };
                let mut bgn = start.v[d] as i64;
                if bgn < lo {
                    bgn += n;
                }
                let bgn = bgn.clamp(lo, hi.max(lo));
                let elo = if s > 0 { 0 } else { -1 };
                let mut e = end.v[d] as i64;
                if e < elo {
                    e += n;
                }
                let e = e.clamp(elo, if s > 0 { n } else { n - 1 });
                let len = if s > 0 {
                    (e - bgn + s - 1) / s
                } else {
                    (bgn - e + (-s) - 1) / (-s)
                };
                begin[d] = bgn;
                step[d] = s;
                shape[d] = len.max(0) as usize;
            }
            let st = strides(&x.shape);
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|i| {
                    let idx = unravel(i, &shape);
                    let flat: i64 = (0..r)
                        .map(|d| (begin[d] + idx[d] as i64 * step[d]) * st[d] as i64)
                        .sum();
                    x.v.get(flat as usize).copied().unwrap_or(0.0)
                })
                .collect::<Vec<_>>();
            encode(out, shape, &v)
        }
        "concat" => {
            let (dim, parts) = h.split_first()?;
            let first = parts.first()?;
            let axis = norm(*dim.v.first()?, first.shape.len())?;
            let mut shape = first.shape.clone();
            shape[axis] = parts
                .iter()
                .map(|p| p.shape.get(axis).copied().unwrap_or(0))
                .sum();
            if parts.iter().any(|p| p.shape.len() != shape.len()) {
                return None;
            }
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|i| {
                    let mut idx = unravel(i, &shape);
                    let mut k = idx[axis];
                    for p in parts {
                        if k < p.shape[axis] {
                            idx[axis] = k;
                            let st = strides(&p.shape);
                            let flat: usize = idx.iter().zip(&st).map(|(a, b)| a * b).sum();
                            return p.v.get(flat).copied().unwrap_or(0.0);
                        }
                        k -= p.shape[axis];
                    }
                    0.0
                })
                .collect::<Vec<_>>();
            encode(out, shape, &v)
        }
        "gather_nd" => {
            let [x, idx] = h.as_slice() else { return None };
            let q = *idx.shape.last()?;
            if q > x.shape.len() {
                return None;
            }
            let lead: Vec<usize> = idx.shape[..idx.shape.len() - 1].to_vec();
            let tail: Vec<usize> = x.shape[q..].to_vec();
            let tail_n: usize = tail.iter().product();
            let st = strides(&x.shape);
            let mut v = Vec::new();
            for i in 0..lead.iter().product::<usize>() {
                let mut base = 0usize;
                for (j, (&dim, &stride)) in x.shape.iter().zip(&st).take(q).enumerate() {
                    let k = idx.v[i * q + j] as i64;
                    let k = if k < 0 { k + dim as i64 } else { k };
                    if k < 0 || k as usize >= dim {
                        return None;
                    }
                    base += k as usize * stride;
                }
                v.extend_from_slice(x.v.get(base..base + tail_n)?);
            }
            let mut shape = lead;
            shape.extend(tail);
            encode(out, shape, &v)
        }
        "reduce" | "reduce_sum" | "reduce_product" | "reduce_max" | "reduce_min" => {
            let x = h.first()?;
            let axes: Vec<usize> = h
                .get(1)?
                .v
                .iter()
                .map(|&a| norm(a, x.shape.len()))
                .collect::<Option<_>>()?;
            let op = match (base, combiner) {
                ("reduce_sum", _) | ("reduce", Some("add")) => 0,
                ("reduce_product", _) | ("reduce", Some("mul")) => 1,
                ("reduce_max", _) | ("reduce", Some("maximum")) => 2,
                ("reduce_min", _) | ("reduce", Some("minimum")) => 3,
                _ => return None,
            };
            let mut shape = x.shape.clone();
            for &a in &axes {
                shape[a] = 1;
            }
            let n: usize = shape.iter().product();
            let mut v = vec![[0.0, 1.0, f64::NEG_INFINITY, f64::INFINITY][op]; n];
            let st = strides(&shape);
            for (i, &val) in x.v.iter().enumerate() {
                let mut idx = unravel(i, &x.shape);
                for &a in &axes {
                    idx[a] = 0;
                }
                let o: usize = idx.iter().zip(&st).map(|(a, b)| a * b).sum();
                v[o] = match op {
                    0 => v[o] + val,
                    1 => v[o] * val,
                    2 => v[o].max(val),
                    _ => v[o].min(val),
                };
            }
            if base == "reduce"
                && let Some(init) = h.get(2).and_then(|i| i.v.first())
            {
                for e in &mut v {
                    *e = match op {
                        0 => *e + init,
                        1 => *e * init,
                        2 => e.max(*init),
                        _ => e.min(*init),
                    };
                }
            }
            encode(out, shape, &v)
        }
        "broadcast_to" => {
            let [x, t] = h.as_slice() else { return None };
            let shape: Vec<usize> = t.v.iter().map(|&d| d as usize).collect();
            if bcast_shape(&x.shape, &shape)? != shape {
                return None;
            }
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|i| bcast_at(x, &unravel(i, &shape)))
                .collect::<Vec<_>>();
            encode(out, shape, &v)
        }
        "broadcast_in_dims" => {
            let [x, sizes, axes] = h.as_slice() else {
                return None;
            };
            let mut shape = x.shape.clone();
            for (&a, &s) in axes.v.iter().zip(&sizes.v) {
                let r = shape.len();
                shape[norm(a, r)?] = s as usize;
            }
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|i| bcast_at(x, &unravel(i, &shape)))
                .collect::<Vec<_>>();
            encode(out, shape, &v)
        }
        "transpose" => {
            let [x, perm] = h.as_slice() else { return None };
            let p: Vec<usize> = perm
                .v
                .iter()
                .map(|&a| norm(a, x.shape.len()))
                .collect::<Option<_>>()?;
            let shape: Vec<usize> = p.iter().map(|&d| x.shape[d]).collect();
            let st = strides(&x.shape);
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|i| {
                    let idx = unravel(i, &shape);
                    let flat: usize = idx.iter().enumerate().map(|(k, &j)| j * st[p[k]]).sum();
                    x.v.get(flat).copied().unwrap_or(0.0)
                })
                .collect::<Vec<_>>();
            encode(out, shape, &v)
        }
        "expand_dims" | "shrink_dims" => {
            let [x, axes] = h.as_slice() else { return None };
            let mut shape = x.shape.clone();
            if base == "expand_dims" {
                let r = shape.len() + axes.v.len();
                let mut ax: Vec<usize> =
                    axes.v.iter().map(|&a| norm(a, r)).collect::<Option<_>>()?;
                ax.sort_unstable();
                for a in ax {
                    shape.insert(a, 1);
                }
            } else {
                let mut ax: Vec<usize> = axes
                    .v
                    .iter()
                    .map(|&a| norm(a, shape.len()))
                    .collect::<Option<_>>()?;
                ax.sort_unstable();
                for a in ax.into_iter().rev() {
                    shape.remove(a);
                }
            }
            encode(out, shape, &x.v)
        }
        "where" => {
            let [c, x, y] = h.as_slice() else { return None };
            let shape = bcast_shape(&bcast_shape(&c.shape, &x.shape)?, &y.shape)?;
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|i| {
                    let idx = unravel(i, &shape);
                    if bcast_at(c, &idx) != 0.0 {
                        bcast_at(x, &idx)
                    } else {
                        bcast_at(y, &idx)
                    }
                })
                .collect::<Vec<_>>();
            encode(out, shape, &v)
        }
        "abs" => encode(
            out,
            h.first()?.shape.clone(),
            &h.first()?.v.iter().map(|x| x.abs()).collect::<Vec<_>>(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(shape: &[u64], v: &[i64]) -> Konst {
        Konst::i64s(shape.to_vec(), v)
    }

    #[test]
    fn integer_remainder_is_truncated() {
        // roll's index computation: [4..10) % 6
        let r = fold(
            "modulo",
            &[&k(&[6], &[4, 5, 6, 7, 8, 9]), &k(&[], &[6])],
            Scalar::SInt(32),
            None,
        )
        .unwrap();
        assert_eq!(r.to_i64s(10).unwrap(), [4, 5, 0, 1, 2, 3]);
        let r = fold(
            "divide",
            &[&k(&[2], &[-10, 10]), &k(&[], &[3])],
            Scalar::SInt(32),
            None,
        )
        .unwrap();
        assert_eq!(r.to_i64s(10).unwrap(), [-3, 3]);
    }

    #[test]
    fn slice_and_concat() {
        let x = k(&[2], &[7, 9]);
        let s = fold(
            "slice",
            &[&x, &k(&[1], &[1]), &k(&[1], &[2]), &k(&[1], &[1])],
            Scalar::UInt(32),
            None,
        )
        .unwrap();
        assert_eq!(s.to_i64s(10).unwrap(), [9]);
        let c = fold(
            "concat",
            &[&k(&[], &[0]), &k(&[2], &[0, 0]), &s, &s],
            Scalar::UInt(32),
            None,
        )
        .unwrap();
        assert_eq!(c.to_i64s(10).unwrap(), [0, 0, 9, 9]);
        // negative stride from the end
        let r = fold(
            "slice",
            &[
                &k(&[4], &[1, 2, 3, 4]),
                &k(&[1], &[-1]),
                &k(&[1], &[-5]),
                &k(&[1], &[-1]),
            ],
            Scalar::SInt(32),
            None,
        )
        .unwrap();
        assert_eq!(r.to_i64s(10).unwrap(), [4, 3, 2, 1]);
    }

    #[test]
    fn reductions_keep_dims() {
        let r = fold(
            "reduce_product",
            &[&k(&[3], &[2, 4, 6]), &k(&[1], &[0])],
            Scalar::UInt(64),
            None,
        )
        .unwrap();
        assert_eq!(r.shape, [1]);
        assert_eq!(r.to_i64s(10).unwrap(), [48]);
    }
}
