//! The flat, command-line form of a configuration ([`Flags`]: one setting per stage, for
//! every weight or for the weights of some op types) and the decisions that turn it into a
//! [`Config`]: defaults, which stage a shared flag such as `granularity` belongs to, and
//! which combinations make no sense. A front end (the `anekit compress` command) only parses
//! values into a [`Flags`]; [`Flags::resolve`] decides.
//!
//! The decisions:
//! - a stage is asked for by its own flag: `quantize` (a dtype), `palettize` (bits) or
//!   `palettize_mode`, one of `prune` / `prune_nm` / `prune_threshold` (at most one);
//! - `granularity` belongs to palettization when it is `per_grouped_channel`, else to
//!   quantization; `per_channel` / `per_block` without `quantize` are errors;
//! - quantization defaults: `linear_symmetric`, per channel — except after palettization,
//!   where it quantizes the LUT, per tensor (its axes are not the weight's: any other
//!   granularity is an error); `block_size` (default 32) alone means per block, as in the
//!   file form;
//! - palettization defaults: `kmeans`, per tensor; `group_size` (default 32) alone means per
//!   grouped channel;
//! - n:m pruning runs along input channels (`prune_dim` 1), block pruning along output
//!   channels (0), as coremltools' `OpMagnitudePrunerConfig`; `prune_block_size` and
//!   `prune_dim` need a pruning method that uses them;
//! - `weight_threshold` (default 2048) applies to every stage; `op_types` limits every stage
//!   to weights consumed by those op types; `skip` leaves weights (const or consumer names)
//!   alone.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::config::{
    Config, DEFAULT_WEIGHT_THRESHOLD, LinearConfig, PaletteConfig, PaletteGranularity, PruneConfig,
    QuantGranularity, Selection, parse_palette_mode, parse_quant_mode,
};
use crate::error::{CompressError, Result};
use crate::linear::{QuantDtype, QuantMode};
use crate::palettize::PaletteMode;
use crate::prune::PruneMethod;

/// Default block size of per-block quantization (coremltools' `OpLinearQuantizerConfig`).
pub const DEFAULT_BLOCK_SIZE: usize = 32;
/// Default channels per LUT of per-grouped-channel palettization (coremltools'
/// `OpPalettizerConfig`).
pub const DEFAULT_GROUP_SIZE: usize = 32;

/// A granularity name, for quantization or palettization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One scale / LUT for the tensor.
    PerTensor,
    /// One scale per output channel (quantization).
    PerChannel,
    /// One scale per output channel and block of input channels (quantization, iOS18).
    PerBlock,
    /// One LUT per group of channels (palettization, iOS18).
    PerGroupedChannel,
}

impl Granularity {
    /// The name (`per_tensor`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::PerTensor => "per_tensor",
            Self::PerChannel => "per_channel",
            Self::PerBlock => "per_block",
            Self::PerGroupedChannel => "per_grouped_channel",
        }
    }
}

impl FromStr for Granularity {
    type Err = CompressError;

    /// `per_tensor`, `per_channel`, `per_block`, `per_grouped_channel` (`-` for `_` too).
    fn from_str(s: &str) -> Result<Self> {
        let n = s.replace('-', "_").to_ascii_lowercase();
        [
            Self::PerTensor,
            Self::PerChannel,
            Self::PerBlock,
            Self::PerGroupedChannel,
        ]
        .into_iter()
        .find(|g| g.name() == n)
        .ok_or_else(|| {
            CompressError::Config(format!(
                "unknown granularity {s:?} (per-tensor, per-channel, per-block, per-grouped-channel)"
            ))
        })
    }
}

impl FromStr for QuantDtype {
    type Err = CompressError;

    /// `int8`, `uint8`, `int4`, `uint4`.
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s).ok_or_else(|| {
            CompressError::Config(format!(
                "unknown quantization type {s:?} (int8, uint8, int4, uint4)"
            ))
        })
    }
}

impl FromStr for QuantMode {
    type Err = CompressError;

    /// `linear`, `linear_symmetric` (`-` for `_` too).
    fn from_str(s: &str) -> Result<Self> {
        parse_quant_mode(s)
    }
}

impl FromStr for PaletteMode {
    type Err = CompressError;

    /// `kmeans`, `uniform`, `unique`.
    fn from_str(s: &str) -> Result<Self> {
        parse_palette_mode(s)
    }
}

/// An n:m ratio (`2:4`: 2 zeros in every 4 consecutive weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NOfM {
    /// Zeros per run.
    pub n: usize,
    /// Run length.
    pub m: usize,
}

impl FromStr for NOfM {
    type Err = CompressError;

    /// `N:M`, e.g. `2:4`.
    fn from_str(s: &str) -> Result<Self> {
        s.split_once(':')
            .and_then(|(n, m)| {
                Some(Self {
                    n: n.trim().parse().ok()?,
                    m: m.trim().parse().ok()?,
                })
            })
            .ok_or_else(|| CompressError::Config(format!("{s:?} is not N:M, e.g. 2:4")))
    }
}

/// The flat form of a configuration: what `anekit compress` takes as flags. `None` / empty
/// means "not given"; [`Flags::resolve`] fills in the defaults (see the module
/// documentation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flags {
    /// Linear quantization to this type.
    pub quantize: Option<QuantDtype>,
    /// Quantization mode (default `linear_symmetric`).
    pub mode: Option<QuantMode>,
    /// Granularity of quantization, or `per_grouped_channel` palettization.
    pub granularity: Option<Granularity>,
    /// Block size of per-block quantization (default [`DEFAULT_BLOCK_SIZE`]).
    pub block_size: Option<usize>,
    /// Only compress weights with more elements (default [`DEFAULT_WEIGHT_THRESHOLD`]).
    pub weight_threshold: Option<usize>,
    /// Palettize to this many bits per index.
    pub palettize: Option<u8>,
    /// Palettization mode (default `kmeans`; `unique` takes no bits).
    pub palettize_mode: Option<PaletteMode>,
    /// Channels per LUT (default [`DEFAULT_GROUP_SIZE`]).
    pub group_size: Option<usize>,
    /// Vector palettization: elements per LUT entry (default 1).
    pub cluster_dim: Option<usize>,
    /// Palettize weights divided by their per-channel maximum.
    pub per_channel_scale: bool,
    /// Magnitude pruning to this fraction of zeros.
    pub prune: Option<f64>,
    /// n:m pruning.
    pub prune_nm: Option<NOfM>,
    /// Pruning of |w| ≤ this threshold.
    pub prune_threshold: Option<f64>,
    /// Block-structured magnitude pruning: channels per block.
    pub prune_block_size: Option<usize>,
    /// Axis of block / n:m pruning (0 output channels, 1 input channels).
    pub prune_dim: Option<usize>,
    /// Only compress weights consumed by ops of these types.
    pub op_types: Vec<String>,
    /// Leave these weights (const or consuming op names) alone.
    pub skip: Vec<String>,
    /// Convert an fp32 model to fp16 compute precision first.
    pub fp16: bool,
}

fn bad<T>(message: impl Into<String>) -> Result<T> {
    Err(CompressError::Config(message.into()))
}

impl Flags {
    /// The configuration these flags describe; contradictory flags are errors that name
    /// them, and the result is [`Config::validate`]d.
    pub fn resolve(&self) -> Result<Config> {
        let config = Config {
            fp16: self.fp16,
            prune: self.prune_config()?.map(|c| self.selection(c)),
            palettize: self.palette_config()?.map(|c| self.selection(c)),
            quantize: self.linear_config()?.map(|c| self.selection(c)),
        };
        config.validate()?;
        Ok(config)
    }

    fn threshold(&self) -> usize {
        self.weight_threshold.unwrap_or(DEFAULT_WEIGHT_THRESHOLD)
    }

    fn palettizes(&self) -> bool {
        self.palettize.is_some() || self.palettize_mode.is_some()
    }

    /// `setting` for every weight, or for the weights of `op_types`; `skip` left alone.
    fn selection<T: Clone>(&self, setting: T) -> Selection<T> {
        let mut s = if self.op_types.is_empty() {
            Selection::global(setting)
        } else {
            Selection {
                global: None,
                op_type: self
                    .op_types
                    .iter()
                    .map(|t| (t.clone(), Some(setting.clone())))
                    .collect(),
                op_name: BTreeMap::new(),
            }
        };
        for n in &self.skip {
            s.op_name.insert(n.clone(), None);
        }
        s
    }

    fn palette_config(&self) -> Result<Option<PaletteConfig>> {
        if !self.palettizes() {
            if self.group_size.is_some() || self.cluster_dim.is_some() || self.per_channel_scale {
                return bad(
                    "--group-size, --cluster-dim and --per-channel-scale are palettization \
                     settings: give --palettize NBITS or --palettize-mode",
                );
            }
            return Ok(None);
        }
        let granularity = match (self.granularity, self.group_size) {
            (Some(Granularity::PerGroupedChannel), g) | (None, g @ Some(_)) => {
                PaletteGranularity::PerGroupedChannel(g.unwrap_or(DEFAULT_GROUP_SIZE))
            }
            (Some(Granularity::PerTensor) | None, None) => PaletteGranularity::PerTensor,
            (Some(Granularity::PerTensor), Some(_)) => {
                return bad("--group-size needs --granularity per-grouped-channel, not per-tensor");
            }
            (Some(g), _) if self.quantize.is_none() => {
                return bad(format!(
                    "palettization granularity must be per-tensor or per-grouped-channel, not {}",
                    g.name()
                ));
            }
            // per_channel / per_block with --quantize: refused by `linear_config`.
            (Some(_), _) => PaletteGranularity::PerTensor,
        };
        Ok(Some(PaletteConfig {
            mode: self.palettize_mode.unwrap_or(PaletteMode::Kmeans),
            nbits: self.palettize,
            granularity,
            channel_axis: None,
            cluster_dim: self.cluster_dim.unwrap_or(1),
            per_channel_scale: self.per_channel_scale,
            weight_threshold: self.threshold(),
        }))
    }

    fn linear_config(&self) -> Result<Option<LinearConfig>> {
        let Some(dtype) = self.quantize else {
            if self.mode.is_some() || self.block_size.is_some() {
                return bad("--mode and --block-size are quantization settings: give --quantize");
            }
            if let Some(g @ (Granularity::PerChannel | Granularity::PerBlock)) = self.granularity {
                return bad(format!(
                    "--granularity {} is a quantization setting: give --quantize",
                    g.name()
                ));
            }
            return Ok(None);
        };
        let block = self.block_size.unwrap_or(DEFAULT_BLOCK_SIZE);
        let granularity = if self.palettizes() {
            // The LUT is quantized, one scale for the whole LUT.
            match (self.granularity, self.block_size) {
                (Some(Granularity::PerChannel | Granularity::PerBlock), _) | (_, Some(_)) => {
                    return bad(
                        "with palettization, --quantize quantizes the LUT, per tensor: \
                         --granularity per-channel / per-block and --block-size do not apply",
                    );
                }
                _ => QuantGranularity::PerTensor,
            }
        } else {
            match (self.granularity, self.block_size) {
                (Some(Granularity::PerTensor), None) => QuantGranularity::PerTensor,
                (Some(Granularity::PerChannel), None) | (None, None) => {
                    QuantGranularity::PerChannel
                }
                (Some(Granularity::PerBlock), _) | (None, Some(_)) => {
                    QuantGranularity::PerBlock(block)
                }
                (Some(g @ (Granularity::PerTensor | Granularity::PerChannel)), Some(_)) => {
                    return bad(format!(
                        "--block-size needs --granularity per-block, not {}",
                        g.name()
                    ));
                }
                (Some(Granularity::PerGroupedChannel), _) => {
                    return bad(
                        "--granularity per-grouped-channel is a palettization setting: give \
                         --palettize NBITS, or per-tensor / per-channel / per-block for \
                         quantization",
                    );
                }
            }
        };
        Ok(Some(LinearConfig {
            dtype,
            mode: self.mode.unwrap_or(QuantMode::LinearSymmetric),
            granularity,
            weight_threshold: self.threshold(),
        }))
    }

    fn prune_config(&self) -> Result<Option<PruneConfig>> {
        let method = match (self.prune, self.prune_nm, self.prune_threshold) {
            (Some(s), None, None) => PruneMethod::Magnitude {
                target_sparsity: s,
                block_size: self.prune_block_size,
                dim: self.prune_dim.unwrap_or(0),
            },
            (None, Some(NOfM { n, m }), None) => {
                if self.prune_block_size.is_some() {
                    return bad("--prune-block-size applies to --prune, not to --prune-nm");
                }
                PruneMethod::NOfM {
                    n,
                    m,
                    dim: self.prune_dim.unwrap_or(1),
                }
            }
            (None, None, Some(t)) => {
                if self.prune_block_size.is_some() || self.prune_dim.is_some() {
                    return bad(
                        "--prune-block-size and --prune-dim do not apply to --prune-threshold",
                    );
                }
                PruneMethod::Threshold {
                    threshold: t,
                    min_sparsity: 0.0,
                }
            }
            (None, None, None) => {
                if self.prune_block_size.is_some() || self.prune_dim.is_some() {
                    return bad("--prune-block-size and --prune-dim need --prune or --prune-nm");
                }
                return Ok(None);
            }
            _ => return bad("give one of --prune, --prune-nm, --prune-threshold"),
        };
        Ok(Some(PruneConfig {
            method,
            weight_threshold: self.threshold(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global<T: Clone>(s: &Option<Selection<T>>) -> T {
        s.as_ref().and_then(|s| s.global.clone()).unwrap()
    }

    #[test]
    fn quantization_alone_is_per_channel_symmetric() {
        let c = Flags {
            quantize: Some(QuantDtype::Int8),
            ..Flags::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(global(&c.quantize), LinearConfig::default());
        assert!(c.palettize.is_none() && c.prune.is_none());
    }

    #[test]
    fn block_size_alone_means_per_block() {
        let c = Flags {
            quantize: Some(QuantDtype::Int4),
            block_size: Some(16),
            ..Flags::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            global(&c.quantize).granularity,
            QuantGranularity::PerBlock(16)
        );
    }

    #[test]
    fn granularity_goes_to_the_stage_it_names() {
        let c = Flags {
            palettize: Some(4),
            quantize: Some(QuantDtype::Int8),
            granularity: Some(Granularity::PerGroupedChannel),
            group_size: Some(16),
            ..Flags::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            global(&c.palettize).granularity,
            PaletteGranularity::PerGroupedChannel(16)
        );
        // The LUT is quantized per tensor.
        assert_eq!(global(&c.quantize).granularity, QuantGranularity::PerTensor);
        let c = Flags {
            palettize: Some(4),
            group_size: Some(8),
            ..Flags::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            global(&c.palettize).granularity,
            PaletteGranularity::PerGroupedChannel(8)
        );
    }

    #[test]
    fn contradictions_are_errors() {
        for f in [
            Flags {
                palettize: Some(4),
                quantize: Some(QuantDtype::Int8),
                granularity: Some(Granularity::PerChannel),
                ..Flags::default()
            },
            Flags {
                palettize: Some(4),
                granularity: Some(Granularity::PerBlock),
                ..Flags::default()
            },
            Flags {
                quantize: Some(QuantDtype::Int8),
                granularity: Some(Granularity::PerGroupedChannel),
                ..Flags::default()
            },
            Flags {
                quantize: Some(QuantDtype::Int8),
                granularity: Some(Granularity::PerChannel),
                block_size: Some(8),
                ..Flags::default()
            },
            Flags {
                group_size: Some(8),
                quantize: Some(QuantDtype::Int8),
                ..Flags::default()
            },
            Flags {
                prune: Some(0.5),
                prune_threshold: Some(0.1),
                ..Flags::default()
            },
            Flags {
                prune_nm: Some(NOfM { n: 2, m: 4 }),
                prune_block_size: Some(2),
                ..Flags::default()
            },
            Flags {
                prune_dim: Some(1),
                quantize: Some(QuantDtype::Int8),
                ..Flags::default()
            },
            Flags {
                mode: Some(QuantMode::Linear),
                palettize: Some(4),
                ..Flags::default()
            },
            Flags::default(),
        ] {
            assert!(f.resolve().is_err(), "{f:?}");
        }
    }

    #[test]
    fn pruning_dims_follow_coremltools() {
        let c = Flags {
            prune_nm: Some("2:4".parse().unwrap()),
            ..Flags::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            global(&c.prune).method,
            PruneMethod::NOfM { n: 2, m: 4, dim: 1 }
        );
        let c = Flags {
            prune: Some(0.5),
            prune_block_size: Some(2),
            op_types: vec!["conv".into()],
            skip: vec!["w0".into()],
            ..Flags::default()
        }
        .resolve()
        .unwrap();
        let p = c.prune.unwrap();
        assert!(p.global.is_none());
        assert_eq!(
            p.op_type["conv"].as_ref().unwrap().method,
            PruneMethod::Magnitude {
                target_sparsity: 0.5,
                block_size: Some(2),
                dim: 0
            }
        );
        assert_eq!(p.op_name["w0"], None);
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            "per-grouped-channel".parse::<Granularity>().unwrap(),
            Granularity::PerGroupedChannel
        );
        assert_eq!("INT4".parse::<QuantDtype>().unwrap(), QuantDtype::Int4);
        assert_eq!(
            "linear-symmetric".parse::<QuantMode>().unwrap(),
            QuantMode::LinearSymmetric
        );
        assert_eq!(
            "unique".parse::<PaletteMode>().unwrap(),
            PaletteMode::Unique
        );
        assert!("2-4".parse::<NOfM>().is_err());
        assert!("per-row".parse::<Granularity>().is_err());
    }
}
