//! What to compress and how: per stage (prune, palettize, quantize) a global setting with
//! overrides by consuming op type and by op name — coremltools' `OptimizationConfig`
//! (op name > op type > global) — plus the TOML file form.
//!
//! Stages run in the order prune → palettize → quantize on each weight. Together they form
//! the joint modes of iOS18: pruning + palettization (`constexpr_lut_to_sparse`), pruning +
//! quantization (`constexpr_sparse_blockwise_shift_scale`), palettization + quantization
//! (the LUT is quantized per tensor), all three.
//!
//! ```toml
//! fp16 = false                    # convert an fp32 model's compute precision to fp16 first
//!
//! [quantize]                      # global linear quantization
//! dtype = "int4"                  # int8 | uint8 | int4 | uint4
//! mode = "linear_symmetric"       # linear | linear_symmetric
//! granularity = "per_block"       # per_tensor | per_channel | per_block
//! block_size = 32
//! weight_threshold = 2048         # compress weights with more elements than this
//!
//! [quantize.op_type.conv]         # weights consumed by conv ops
//! dtype = "int8"
//! granularity = "per_channel"
//!
//! [quantize.op_name.lm_head_weight]
//! enabled = false                 # leave this one alone
//!
//! [palettize]
//! nbits = 4                       # 1 2 3 4 6 8 (not for mode = "unique")
//! mode = "kmeans"                 # kmeans | uniform | unique
//! granularity = "per_grouped_channel"
//! group_size = 16
//! cluster_dim = 1                 # > 1: vector palettization (iOS18)
//! per_channel_scale = false       # (iOS18)
//!
//! [prune]
//! target_sparsity = 0.5           # or n_m = [2, 4], or threshold = 1e-3
//! block_size = 2                  # optional, with target_sparsity
//! dim = 0                         # 0 | 1
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{CompressError, Result};
use crate::linear::{QuantDtype, QuantMode};
use crate::palettize::{PaletteMode, SUPPORTED_NBITS};
use crate::prune::PruneMethod;
use crate::stage::Consumer;

/// coremltools' default `weight_threshold`.
pub const DEFAULT_WEIGHT_THRESHOLD: usize = 2048;

/// Granularity of linear quantization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuantGranularity {
    /// One scale for the tensor.
    PerTensor,
    /// One scale per output channel.
    PerChannel,
    /// One scale per output channel and `block_size` input channels (iOS18).
    PerBlock(usize),
    /// Explicit block size per axis (0 = whole axis), coremltools' tuple form (iOS18 unless
    /// it is per-tensor or per-channel in effect).
    Blocks(Vec<usize>),
}

/// Linear quantization of one weight.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearConfig {
    /// Quantized element type.
    pub dtype: QuantDtype,
    /// Mode.
    pub mode: QuantMode,
    /// Granularity.
    pub granularity: QuantGranularity,
    /// Only weights with more elements than this are quantized.
    pub weight_threshold: usize,
}

impl Default for LinearConfig {
    /// coremltools' defaults: int8, linear_symmetric, per_channel, threshold 2048.
    fn default() -> Self {
        Self {
            dtype: QuantDtype::Int8,
            mode: QuantMode::LinearSymmetric,
            granularity: QuantGranularity::PerChannel,
            weight_threshold: DEFAULT_WEIGHT_THRESHOLD,
        }
    }
}

/// Granularity of palettization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaletteGranularity {
    /// One LUT for the tensor.
    PerTensor,
    /// One LUT per `group_size` channels (iOS18).
    PerGroupedChannel(usize),
}

/// Palettization of one weight.
#[derive(Debug, Clone, PartialEq)]
pub struct PaletteConfig {
    /// Mode.
    pub mode: PaletteMode,
    /// Index width (kmeans, uniform); `None` for unique.
    pub nbits: Option<u8>,
    /// Granularity.
    pub granularity: PaletteGranularity,
    /// Channel axis for grouping (default: the consumer's output axis).
    pub channel_axis: Option<i64>,
    /// Vector length (1 = scalar).
    pub cluster_dim: usize,
    /// Divide by the per-channel max before clustering (iOS18).
    pub per_channel_scale: bool,
    /// Only weights with more elements than this are palettized.
    pub weight_threshold: usize,
}

impl Default for PaletteConfig {
    /// coremltools' defaults with nbits 4: kmeans, per_tensor, threshold 2048.
    fn default() -> Self {
        Self {
            mode: PaletteMode::Kmeans,
            nbits: Some(4),
            granularity: PaletteGranularity::PerTensor,
            channel_axis: None,
            cluster_dim: 1,
            per_channel_scale: false,
            weight_threshold: DEFAULT_WEIGHT_THRESHOLD,
        }
    }
}

/// Pruning of one weight.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneConfig {
    /// The method.
    pub method: PruneMethod,
    /// Only weights with more elements than this are pruned.
    pub weight_threshold: usize,
}

/// A stage's settings: global, by consuming op type, by op name; `None` = do not apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection<T> {
    /// Applies where nothing more specific does.
    pub global: Option<T>,
    /// By the type of the op consuming the weight (`linear`, `conv`, `matmul`, ...).
    pub op_type: BTreeMap<String, Option<T>>,
    /// By the name of the const or of the op consuming it.
    pub op_name: BTreeMap<String, Option<T>>,
}

impl<T> Default for Selection<T> {
    fn default() -> Self {
        Self {
            global: None,
            op_type: BTreeMap::new(),
            op_name: BTreeMap::new(),
        }
    }
}

impl<T> Selection<T> {
    /// The same setting for every weight.
    pub fn global(config: T) -> Self {
        Self {
            global: Some(config),
            ..Self::default()
        }
    }

    /// Whether a setting is given for the const `name` (output `var`) by name.
    pub fn is_named(&self, name: &str, var: &str) -> bool {
        self.op_name.contains_key(name) || self.op_name.contains_key(var)
    }

    /// The setting for the const `name` (output `var`) read by `consumers` (coremltools
    /// `_get_const_op_config`): its own name first, else each consumer's name, type or the
    /// global setting; consumers that ask for different settings are an error (the message
    /// names them). `None`: the stage leaves the weight alone.
    pub fn resolve(
        &self,
        name: &str,
        var: &str,
        consumers: &[Consumer],
    ) -> std::result::Result<Option<&T>, String>
    where
        T: PartialEq,
    {
        if let Some(c) = self.op_name.get(name).or_else(|| self.op_name.get(var)) {
            return Ok(c.as_ref());
        }
        let mut picked: Option<(Option<&T>, &Consumer)> = None;
        for u in consumers {
            let c = match self.op_name.get(&u.op_name) {
                Some(c) => c.as_ref(),
                None => match self.op_type.get(&u.op_type) {
                    Some(c) => c.as_ref(),
                    None => self.global.as_ref(),
                },
            };
            match &picked {
                Some((p, first)) if *p != c => {
                    return Err(format!(
                        "consumers {} ({}) and {} ({}) ask for different settings",
                        first.op_name, first.op_type, u.op_name, u.op_type
                    ));
                }
                Some(_) => {}
                None => picked = Some((c, u)),
            }
        }
        Ok(picked.and_then(|p| p.0))
    }

    fn all(&self) -> impl Iterator<Item = &T> {
        self.global
            .iter()
            .chain(self.op_type.values().flatten())
            .chain(self.op_name.values().flatten())
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Convert an fp32 model to fp16 compute precision first.
    pub fp16: bool,
    /// Pruning stage.
    pub prune: Option<Selection<PruneConfig>>,
    /// Palettization stage.
    pub palettize: Option<Selection<PaletteConfig>>,
    /// Linear quantization stage.
    pub quantize: Option<Selection<LinearConfig>>,
}

impl Config {
    /// Check values coremltools would refuse.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CompressError::Config(m));
        if let Some(s) = &self.quantize {
            for c in s.all() {
                match &c.granularity {
                    QuantGranularity::PerBlock(0) => return bad("block_size must be > 0".into()),
                    QuantGranularity::Blocks(b) if b.is_empty() => {
                        return bad("block_size list is empty".into());
                    }
                    _ => {}
                }
            }
        }
        if let Some(s) = &self.palettize {
            for c in s.all() {
                match (c.mode, c.nbits) {
                    (PaletteMode::Unique, Some(_)) => {
                        return bad("nbits must not be given for mode unique".into());
                    }
                    (PaletteMode::Kmeans | PaletteMode::Uniform, None) => {
                        return bad("nbits is required for kmeans and uniform".into());
                    }
                    (_, Some(n)) if !SUPPORTED_NBITS.contains(&n) => {
                        return bad(format!("nbits {n} is not one of 1, 2, 3, 4, 6, 8"));
                    }
                    _ => {}
                }
                if c.cluster_dim == 0 {
                    return bad("cluster_dim must be ≥ 1".into());
                }
                if c.cluster_dim > 1 && c.mode == PaletteMode::Uniform {
                    return bad(
                        "vector palettization (cluster_dim > 1) does not support mode uniform"
                            .into(),
                    );
                }
                if let PaletteGranularity::PerGroupedChannel(0) = c.granularity {
                    return bad("group_size must be > 0".into());
                }
            }
        }
        if let Some(s) = &self.prune {
            for c in s.all() {
                match &c.method {
                    PruneMethod::Magnitude {
                        target_sparsity,
                        block_size,
                        dim,
                    } => {
                        if !(0.0..=1.0).contains(target_sparsity) {
                            return bad(format!(
                                "target_sparsity {target_sparsity} is not in [0, 1]"
                            ));
                        }
                        if block_size.is_some_and(|b| b <= 1) {
                            return bad("prune block_size must be > 1".into());
                        }
                        if *dim > 1 {
                            return bad("prune dim must be 0 or 1".into());
                        }
                    }
                    PruneMethod::NOfM { n, m, dim } => {
                        if n > m || *m == 0 {
                            return bad(format!("n:m ratio {n}:{m} needs 0 < m and n ≤ m"));
                        }
                        if *dim > 1 {
                            return bad("prune dim must be 0 or 1".into());
                        }
                    }
                    PruneMethod::Threshold { threshold, .. } => {
                        if !threshold.is_finite() {
                            return bad("threshold must be finite".into());
                        }
                    }
                }
            }
        }
        if self.prune.is_none() && self.palettize.is_none() && self.quantize.is_none() && !self.fp16
        {
            return bad("nothing to do: give a quantize, palettize or prune stage, or fp16".into());
        }
        Ok(())
    }

    /// Parse the TOML form (see the module documentation).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let file: FileConfig = toml::from_str(text).map_err(|e| CompressError::ConfigFile {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        let cfg = file.resolve()?;
        cfg.validate()?;
        Ok(cfg)
    }
}

// ------------------------------------------------------------------------------------------
// File form
// ------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    fp16: bool,
    quantize: Option<QuantSection>,
    palettize: Option<PaletteSection>,
    prune: Option<PruneSection>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct QuantSection {
    enabled: Option<bool>,
    dtype: Option<String>,
    mode: Option<String>,
    granularity: Option<String>,
    block_size: Option<BlockSize>,
    weight_threshold: Option<usize>,
    #[serde(default)]
    op_type: BTreeMap<String, QuantSection>,
    #[serde(default)]
    op_name: BTreeMap<String, QuantSection>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
enum BlockSize {
    One(usize),
    PerAxis(Vec<usize>),
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct PaletteSection {
    enabled: Option<bool>,
    nbits: Option<u8>,
    mode: Option<String>,
    granularity: Option<String>,
    group_size: Option<usize>,
    channel_axis: Option<i64>,
    cluster_dim: Option<usize>,
    per_channel_scale: Option<bool>,
    weight_threshold: Option<usize>,
    #[serde(default)]
    op_type: BTreeMap<String, PaletteSection>,
    #[serde(default)]
    op_name: BTreeMap<String, PaletteSection>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct PruneSection {
    enabled: Option<bool>,
    target_sparsity: Option<f64>,
    n_m: Option<(usize, usize)>,
    threshold: Option<f64>,
    minimum_sparsity_percentile: Option<f64>,
    block_size: Option<usize>,
    dim: Option<usize>,
    weight_threshold: Option<usize>,
    #[serde(default)]
    op_type: BTreeMap<String, PruneSection>,
    #[serde(default)]
    op_name: BTreeMap<String, PruneSection>,
}

fn err<T>(m: impl Into<String>) -> Result<T> {
    Err(CompressError::Config(m.into()))
}

impl FileConfig {
    fn resolve(self) -> Result<Config> {
        Ok(Config {
            fp16: self.fp16,
            quantize: self
                .quantize
                .map(|s| {
                    selection(s, QuantSection::one, |s| {
                        (s.op_type.clone(), s.op_name.clone())
                    })
                })
                .transpose()?,
            palettize: self
                .palettize
                .map(|s| {
                    selection(s, PaletteSection::one, |s| {
                        (s.op_type.clone(), s.op_name.clone())
                    })
                })
                .transpose()?,
            prune: self
                .prune
                .map(|s| {
                    selection(s, PruneSection::one, |s| {
                        (s.op_type.clone(), s.op_name.clone())
                    })
                })
                .transpose()?,
        })
    }
}

type Maps<S> = (BTreeMap<String, S>, BTreeMap<String, S>);

fn selection<S, T>(
    s: S,
    one: impl Fn(&S) -> Result<Option<T>>,
    maps: impl Fn(&S) -> Maps<S>,
) -> Result<Selection<T>> {
    let (types, names) = maps(&s);
    let mut sel = Selection {
        global: one(&s)?,
        ..Selection::default()
    };
    for (k, v) in types {
        let (t, n) = maps(&v);
        if !t.is_empty() || !n.is_empty() {
            return err(format!(
                "op_type.{k} cannot nest further op_type/op_name tables"
            ));
        }
        sel.op_type.insert(k, one(&v)?);
    }
    for (k, v) in names {
        let (t, n) = maps(&v);
        if !t.is_empty() || !n.is_empty() {
            return err(format!(
                "op_name.{k} cannot nest further op_type/op_name tables"
            ));
        }
        sel.op_name.insert(k, one(&v)?);
    }
    Ok(sel)
}

/// Parse a quantization granularity name.
pub fn parse_quant_granularity(g: &str, block_size: Option<usize>) -> Result<QuantGranularity> {
    Ok(match g.replace('-', "_").as_str() {
        "per_tensor" => QuantGranularity::PerTensor,
        "per_channel" => QuantGranularity::PerChannel,
        "per_block" => QuantGranularity::PerBlock(block_size.unwrap_or(32)),
        other => return err(format!("unknown quantization granularity {other:?}")),
    })
}

/// Parse a quantization mode name (`linear`, `linear_symmetric`, `linear-symmetric`).
pub fn parse_quant_mode(m: &str) -> Result<QuantMode> {
    match m.replace('-', "_").to_ascii_lowercase().as_str() {
        "linear" => Ok(QuantMode::Linear),
        "linear_symmetric" => Ok(QuantMode::LinearSymmetric),
        other => err(format!("unknown quantization mode {other:?}")),
    }
}

/// Parse a palettization mode name.
pub fn parse_palette_mode(m: &str) -> Result<PaletteMode> {
    match m.to_ascii_lowercase().as_str() {
        "kmeans" => Ok(PaletteMode::Kmeans),
        "uniform" => Ok(PaletteMode::Uniform),
        "unique" => Ok(PaletteMode::Unique),
        other => err(format!(
            "unknown palettization mode {other:?} (kmeans, uniform, unique)"
        )),
    }
}

impl QuantSection {
    fn one(&self) -> Result<Option<LinearConfig>> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let d = LinearConfig::default();
        let dtype = match &self.dtype {
            Some(s) => QuantDtype::parse(s).ok_or_else(|| {
                CompressError::Config(format!("unknown dtype {s:?} (int8, uint8, int4, uint4)"))
            })?,
            None => d.dtype,
        };
        let mode = match &self.mode {
            Some(m) => parse_quant_mode(m)?,
            None => d.mode,
        };
        let granularity = match (&self.granularity, &self.block_size) {
            (_, Some(BlockSize::PerAxis(v))) => QuantGranularity::Blocks(v.clone()),
            (Some(g), Some(BlockSize::One(b))) => parse_quant_granularity(g, Some(*b))?,
            (Some(g), None) => parse_quant_granularity(g, None)?,
            (None, Some(BlockSize::One(b))) => QuantGranularity::PerBlock(*b),
            (None, None) => d.granularity,
        };
        Ok(Some(LinearConfig {
            dtype,
            mode,
            granularity,
            weight_threshold: self.weight_threshold.unwrap_or(d.weight_threshold),
        }))
    }
}

impl PaletteSection {
    fn one(&self) -> Result<Option<PaletteConfig>> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let mode = match &self.mode {
            Some(m) => parse_palette_mode(m)?,
            None => PaletteMode::Kmeans,
        };
        let granularity = match self.granularity.as_deref().map(|g| g.replace('-', "_")) {
            None => match self.group_size {
                Some(g) => PaletteGranularity::PerGroupedChannel(g),
                None => PaletteGranularity::PerTensor,
            },
            Some(g) if g == "per_tensor" => PaletteGranularity::PerTensor,
            Some(g) if g == "per_grouped_channel" => {
                PaletteGranularity::PerGroupedChannel(self.group_size.unwrap_or(32))
            }
            Some(g) => return err(format!("unknown palettization granularity {g:?}")),
        };
        Ok(Some(PaletteConfig {
            mode,
            nbits: self.nbits,
            granularity,
            channel_axis: self.channel_axis,
            cluster_dim: self.cluster_dim.unwrap_or(1),
            per_channel_scale: self.per_channel_scale.unwrap_or(false),
            weight_threshold: self.weight_threshold.unwrap_or(DEFAULT_WEIGHT_THRESHOLD),
        }))
    }
}

impl PruneSection {
    fn one(&self) -> Result<Option<PruneConfig>> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let method = match (self.target_sparsity, self.n_m, self.threshold) {
            (Some(t), None, None) => PruneMethod::Magnitude {
                target_sparsity: t,
                block_size: self.block_size,
                dim: self.dim.unwrap_or(0),
            },
            (None, Some((n, m)), None) => {
                if self.block_size.is_some() {
                    return err("block_size cannot be combined with n_m");
                }
                PruneMethod::NOfM {
                    n,
                    m,
                    dim: self.dim.unwrap_or(1),
                }
            }
            (None, None, Some(t)) => PruneMethod::Threshold {
                threshold: t,
                min_sparsity: self.minimum_sparsity_percentile.unwrap_or(0.5),
            },
            _ => return err("give exactly one of target_sparsity, n_m, threshold"),
        };
        Ok(Some(PruneConfig {
            method,
            weight_threshold: self.weight_threshold.unwrap_or(DEFAULT_WEIGHT_THRESHOLD),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_of_the_documented_example() {
        let text = r#"
            [quantize]
            dtype = "int4"
            granularity = "per_block"
            block_size = 32
            [quantize.op_type.conv]
            dtype = "int8"
            granularity = "per_channel"
            [quantize.op_name.lm_head_weight]
            enabled = false
            [palettize]
            nbits = 4
            granularity = "per_grouped_channel"
            group_size = 16
            [prune]
            n_m = [2, 4]
        "#;
        let c = Config::from_toml(text, "test").unwrap();
        let q = c.quantize.unwrap();
        assert_eq!(
            q.global.unwrap().granularity,
            QuantGranularity::PerBlock(32)
        );
        assert_eq!(q.op_type["conv"].as_ref().unwrap().dtype, QuantDtype::Int8);
        assert_eq!(q.op_name["lm_head_weight"], None);
        assert_eq!(
            c.palettize.unwrap().global.unwrap().granularity,
            PaletteGranularity::PerGroupedChannel(16)
        );
        assert_eq!(
            c.prune.unwrap().global.unwrap().method,
            PruneMethod::NOfM { n: 2, m: 4, dim: 1 }
        );
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(Config::from_toml("[quantize]\ndtype = \"int3\"", "t").is_err());
        assert!(Config::from_toml("[palettize]\nnbits = 5", "t").is_err());
        assert!(Config::from_toml("[palettize]\nmode = \"unique\"\nnbits = 4", "t").is_err());
        assert!(Config::from_toml("[prune]\ntarget_sparsity = 0.5\nn_m = [1, 2]", "t").is_err());
        assert!(Config::from_toml("[quantize]\nbogus = 1", "t").is_err());
        assert!(Config::from_toml("", "t").is_err());
    }
}
