//! Inputs for `run` and `bench`: from `.npy` files, random, or the bundled sample.

use std::path::PathBuf;

use anekit_runtime::{FeatureSpec, NamedTensors, Tensor};
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

pub use anekit::inputs::Rng;

/// Random values for one input of its default shape ([`anekit::inputs::random_input`]).
pub fn random_input(spec: &FeatureSpec, rng: &mut Rng, int_high: i32) -> Result<Tensor> {
    anekit::inputs::random_input(spec, rng, int_high)
        .with_context(|| format!("input {:?}: give --input {}=FILE.npy", spec.name, spec.name))
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
