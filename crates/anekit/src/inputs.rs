//! Inputs for a prediction: reproducible random values of a model's input shapes.

use anekit_runtime::{ElementType, FeatureSpec, NamedTensors, Tensor};

use crate::{Error, Result};

/// SplitMix64: a small, well-known deterministic generator (reproducible random inputs).
#[derive(Debug, Clone)]
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
/// uniform in [0, `int_high`), bools fair coins. Strings and dictionaries are errors.
pub fn random_input(spec: &FeatureSpec, rng: &mut Rng, int_high: i32) -> Result<Tensor> {
    let shape = spec.shape.default_shape().to_vec();
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            Error::Other(format!(
                "input {}: shape {shape:?} has too many elements for a random input",
                spec.name
            ))
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
        ElementType::Str | ElementType::Dict => {
            return Err(Error::Other(format!(
                "input {:?} is a {} feature: random values are only made for tensors",
                spec.name, spec.dtype
            )));
        }
    };
    Ok(t)
}

/// Random values for every input in `specs` ([`random_input`], integers in [0, 10)).
pub fn random_inputs(specs: &[FeatureSpec], seed: u64) -> Result<NamedTensors> {
    let mut rng = Rng::new(seed);
    specs
        .iter()
        .map(|s| Ok((s.name.clone(), random_input(s, &mut rng, 10)?)))
        .collect()
}
