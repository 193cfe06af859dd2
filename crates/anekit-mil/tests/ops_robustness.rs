//! Programs come from untrusted files: inference and argument checks must return errors,
//! never panic or overflow, for any arguments. Every revision of every op is run on many
//! pseudo-random argument sets (odd ranks, zero/unknown/huge dims, negative and extreme
//! constant values, wrong kinds, unknown ranks, missing or extra parameters).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use anekit_mil::Opset;
use anekit_mil::ops::{Arg, ParamKind, check_args, infer_with, registry};
use anekit_mil::types::{DataType, Dim, TensorType, ValueType};
use anekit_mil::value::{Placement, Value};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
}

const DIMS: &[Dim] = &[
    Dim::Fixed(0),
    Dim::Fixed(1),
    Dim::Fixed(2),
    Dim::Fixed(3),
    Dim::Fixed(4),
    Dim::Fixed(16),
    Dim::Fixed(u64::MAX),
    Dim::Fixed(1 << 40),
    // a malformed file may declare any size: ceil-divisions and `+ 1`s must not overflow
    Dim::Fixed(i64::MAX as u64),
    Dim::Fixed(i64::MAX as u64 - 1),
    Dim::Unknown { variadic: false },
    Dim::Unknown { variadic: true },
];
const INTS: &[i32] = &[0, 1, 2, 3, -1, -2, -7, 4, 16, 255, i32::MAX, i32::MIN];
const STRS: &[&str] = &[
    "valid",
    "same",
    "same_lower",
    "custom",
    "fp32",
    "fp16",
    "int32",
    "uint16",
    "uint8",
    "int8",
    "bool",
    "EXACT",
    "DEFAULT",
    "CORNERS_HEIGHT_FIRST",
    "forward",
    "bidirectional",
    "constant",
    "bilinear",
    "LINEAR",
    "",
    "x",
];

fn random_dtype(r: &mut Rng, kind: &ParamKind) -> DataType {
    match kind {
        ParamKind::Tensor(d) if r.below(5) > 0 => r.pick(d.types),
        _ => r.pick(&DataType::ALL),
    }
}

fn random_shape(r: &mut Rng) -> Option<Vec<Dim>> {
    if r.below(12) == 0 {
        return None;
    }
    let rank = r.pick(&[0usize, 1, 1, 2, 3, 4, 4, 5, 6]);
    Some(
        (0..rank)
            .map(|_| {
                if r.below(3) == 0 {
                    r.pick(DIMS)
                } else {
                    Dim::Fixed(r.pick(&[1, 2, 3, 4, 8]))
                }
            })
            .collect(),
    )
}

fn literal(r: &mut Rng, dtype: DataType) -> Option<Value> {
    let n = r.pick(&[0usize, 1, 1, 2, 3, 4, 6, 8]);
    let scalar = n == 1 && r.below(2) == 0;
    let shape: Vec<u64> = if scalar { vec![] } else { vec![n as u64] };
    Some(match dtype {
        DataType::String => Value::string(r.pick(STRS)),
        DataType::Int32 => {
            let v: Vec<i32> = (0..n).map(|_| r.pick(INTS)).collect();
            Value::tensor_bytes(
                TensorType::new(DataType::Int32, &shape),
                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
                Placement::Inline,
            )
        }
        DataType::Fp32 => {
            let v: Vec<f32> = (0..n)
                .map(|_| r.pick(&[0.0f32, 1.0, -1.0, 0.5, 3.17, f32::NAN, f32::INFINITY, 1e30]))
                .collect();
            Value::tensor_bytes(
                TensorType::new(DataType::Fp32, &shape),
                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
                Placement::Inline,
            )
        }
        d if d.bits().is_some() => {
            let bits = u64::from(d.bits().unwrap());
            let count: u64 = shape.iter().product();
            let len = (count * bits).div_ceil(8) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
            Value::tensor_bytes(TensorType::new(d, &shape), bytes, Placement::Inline)
        }
        _ => return None,
    })
}

fn random_arg(r: &mut Rng, kind: &ParamKind, constant: bool) -> Arg {
    match r.below(10) {
        0 => Arg::var(ValueType::State(Box::new(ValueType::tensor(
            DataType::Fp16,
            &[1, 4],
        )))),
        1 => Arg::var(ValueType::List {
            element: Box::new(ValueType::Tensor(TensorType {
                dtype: random_dtype(r, kind),
                shape: random_shape(r),
                attributes: BTreeMap::new(),
            })),
            length: r.pick(DIMS),
        }),
        2..=5 if constant || r.below(2) == 0 => {
            let dtype = random_dtype(r, kind);
            match literal(r, dtype) {
                Some(v) => Arg::literal(v),
                None => Arg::constexpr(ValueType::Tensor(TensorType {
                    dtype,
                    shape: random_shape(r),
                    attributes: BTreeMap::new(),
                })),
            }
        }
        _ => {
            let ty = ValueType::Tensor(TensorType {
                dtype: random_dtype(r, kind),
                shape: random_shape(r),
                attributes: BTreeMap::new(),
            });
            let mut a = if constant {
                Arg::constexpr(ty)
            } else {
                Arg::var(ty)
            };
            if r.below(4) == 0 {
                a.sym = Some(
                    (0..r.below(5))
                        .map(|_| {
                            if r.below(3) == 0 {
                                None
                            } else {
                                Some(i64::from(r.pick(INTS)))
                            }
                        })
                        .collect(),
                );
            }
            a
        }
    }
}

#[test]
fn inference_never_panics() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0usize;
    let mut ok = 0usize;
    for (name, revs) in registry().iter() {
        for def in revs {
            for _ in 0..400 {
                let mut args: BTreeMap<String, Vec<Arg>> = BTreeMap::new();
                for p in &def.params {
                    if p.optional && r.below(2) == 0 {
                        continue;
                    }
                    let n = if p.is_variadic() {
                        r.below(4)
                    } else if r.below(20) == 0 {
                        2
                    } else {
                        1
                    };
                    args.insert(
                        p.name.to_string(),
                        (0..n)
                            .map(|_| random_arg(&mut r, &p.kind, p.constant))
                            .collect(),
                    );
                }
                if r.below(20) == 0 {
                    args.insert(
                        "bogus".into(),
                        vec![random_arg(&mut r, &ParamKind::Any, false)],
                    );
                }
                let blocks: Vec<Vec<ValueType>> = (0..r.below(3))
                    .map(|_| {
                        (0..r.below(3))
                            .map(|_| {
                                ValueType::Tensor(TensorType {
                                    dtype: r.pick(&[DataType::Bool, DataType::Fp32]),
                                    shape: random_shape(&mut r),
                                    attributes: BTreeMap::new(),
                                })
                            })
                            .collect()
                    })
                    .collect();
                let opset = r.pick(&[def.opset, Opset::Ios18, Opset::Ios26]);
                let res = catch_unwind(AssertUnwindSafe(|| {
                    let _ = check_args(def, &args);
                    infer_with(def, opset, &args, &blocks).is_ok()
                }));
                match res {
                    Ok(true) => ok += 1,
                    Ok(false) => {}
                    Err(_) => panic!(
                        "{name} ({}) panicked on {args:#?} / blocks {blocks:?}",
                        def.opset
                    ),
                }
                runs += 1;
            }
        }
    }
    // the generator is not degenerate: a fair share of the argument sets are valid
    assert!(
        ok * 20 > runs,
        "only {ok} of {runs} random argument sets inferred"
    );
}
