//! Inputs for `run` and `bench`: from `.npy` files, random, or the bundled sample.

use std::path::PathBuf;

use anekit_runtime::{ElementType, FeatureSpec, NamedTensors, Tensor};
use anyhow::{Context, Result, bail};

/// `NAME=FILE.npy` pairs.
#[derive(Debug, Clone)]
pub struct InputArg {
    /// Input name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

impl std::str::FromStr for InputArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, path) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=FILE.npy, got {s:?}"))?;
        if name.is_empty() || path.is_empty() {
            return Err(format!("expected NAME=FILE.npy, got {s:?}"));
        }
        Ok(Self {
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }
}

/// SplitMix64: a small, well-known deterministic generator (reproducible random inputs).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(f32::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }
}

/// Random values for one input of its default shape: floats standard normal, integers
/// uniform in [0, `int_high`), bools fair coins.
pub fn random_input(spec: &FeatureSpec, rng: &mut Rng, int_high: i32) -> Result<Tensor> {
    let shape = spec.shape.default_shape().to_vec();
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "input {}: shape {shape:?} has too many elements for a random input",
                spec.name
            )
        })?;
    let t = match spec.dtype {
        ElementType::F32 | ElementType::F16 => {
            Tensor::f32(&shape, (0..n).map(|_| rng.normal()).collect())?.cast(spec.dtype)
        }
        ElementType::I32 | ElementType::I8 | ElementType::U8 => Tensor::i32(
            &shape,
            (0..n)
                .map(|_| (rng.uniform() * int_high as f32) as i32)
                .collect(),
        )?
        .cast(spec.dtype),
        ElementType::Bool => Tensor::i32(
            &shape,
            (0..n).map(|_| i32::from(rng.uniform() < 0.5)).collect(),
        )?
        .cast(ElementType::Bool),
        ElementType::Str | ElementType::Dict => bail!(
            "input {:?} is a {} feature: random values are only made for tensors; give --input {}=FILE.npy",
            spec.name,
            spec.dtype,
            spec.name
        ),
    };
    Ok(t)
}

/// Gather the inputs a model needs: files given on the command line, then random values
/// (with `random`) or the bundled sample for the bundled model; anything still missing is an
/// error listing what the model takes.
pub fn gather(
    specs: &[FeatureSpec],
    given: &[InputArg],
    random: bool,
    seed: u64,
    int_high: i32,
    sample: Option<&NamedTensors>,
) -> Result<(NamedTensors, Vec<String>)> {
    let mut out = NamedTensors::new();
    let mut notes = Vec::new();
    for g in given {
        let spec = specs.iter().find(|s| s.name == g.name).with_context(|| {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            format!(
                "the model has no input {:?} (its inputs: {})",
                g.name,
                names.join(", ")
            )
        })?;
        let t = anekit_runtime::npy::read(&g.path)?;
        let t = if t.dtype() == spec.dtype {
            t
        } else {
            notes.push(format!(
                "{}: converted {} from {} to {}",
                g.name,
                g.path.display(),
                t.dtype(),
                spec.dtype
            ));
            t.cast(spec.dtype)
        };
        out.insert(g.name.clone(), t);
    }
    let mut rng = Rng::new(seed);
    for spec in specs {
        if out.contains_key(&spec.name) {
            continue;
        }
        if let Some(t) = sample.and_then(|s| s.get(&spec.name)) {
            out.insert(spec.name.clone(), t.clone());
            notes.push(format!("{}: the bundled sample input", spec.name));
        } else if random {
            out.insert(spec.name.clone(), random_input(spec, &mut rng, int_high)?);
            notes.push(format!(
                "{}: random {} {:?} (seed {seed})",
                spec.name,
                spec.dtype,
                spec.shape.default_shape()
            ));
        } else {
            let all: Vec<String> = specs
                .iter()
                .map(|s| format!("{} ({} {:?})", s.name, s.dtype, s.shape.default_shape()))
                .collect();
            bail!(
                "no value for input {:?}: give --input {}=FILE.npy or --random (the model's inputs: {})",
                spec.name,
                spec.name,
                all.join(", ")
            );
        }
    }
    Ok((out, notes))
}

/// min, max, mean and the first few values of a tensor, for printing.
pub fn describe(t: &Tensor) -> String {
    match t {
        Tensor::Str(a) => {
            let head: Vec<String> = a.iter().take(5).map(|v| format!("{v:?}")).collect();
            return if a.len() == 1 {
                head.join("")
            } else {
                format!(
                    "[{}{}]",
                    head.join(", "),
                    if a.len() > 5 { ", …" } else { "" }
                )
            };
        }
        Tensor::Dict(d) => {
            let e = d.entries();
            let head: Vec<String> = e
                .iter()
                .take(10)
                .map(|(k, v)| format!("{k}: {v:.4}"))
                .collect();
            return format!(
                "{{{}{}}}",
                head.join(", "),
                if e.len() > 10 { ", …" } else { "" }
            );
        }
        _ => {}
    }
    let f = t.to_f32();
    let n = f.len();
    if n == 0 {
        return "(empty)".into();
    }
    let (mut lo, mut hi, mut sum, mut nonfinite) = (f32::INFINITY, f32::NEG_INFINITY, 0f64, 0usize);
    for &v in f.iter() {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
            sum += f64::from(v);
        } else {
            nonfinite += 1;
        }
    }
    let head: Vec<String> = f.iter().take(5).map(|v| format!("{v:.4}")).collect();
    let mut s = format!(
        "min {lo:.4}  max {hi:.4}  mean {:.4}  [{}{}]",
        sum / (n - nonfinite).max(1) as f64,
        head.join(", "),
        if n > 5 { ", …" } else { "" }
    );
    if nonfinite > 0 {
        s.push_str(&format!("  ({nonfinite} non-finite)"));
    }
    s
}
