//! Which MIL the private compiler of a chip generation takes — portable, chosen from the
//! chip detected at run time.
//!
//! - M1/M2 (Neural Engine generations h13/h14): `program(1.0)` with the verbose scalar syntax
//!   and an `ios16` opset, every weight in its own blob file (one blob at offset 64), fp16
//!   inputs and outputs. maderix/ANE's benchmark report (benchmarks/ANE_BENCHMARK_REPORT.md,
//!   "Cross-Generation MIL Compatibility") finds `program(1.3)`/ios18 only partly working on
//!   M1, single-blob weights and BLOBFILE offsets into one file failing there, and
//!   per-matrix weight blobs working on every generation (its training code,
//!   `training/stories_mil.h`, writes one file per weight at offset 64); maderix/ANE#6
//!   reports that M1/M2 need `program(1.0)`/`<ios16>` and fp16 I/O. On the M1 the
//!   surface-size ordering rule of maderix/ANE#47 applies as well.
//! - M3 and later (h15+): the program's own opset and dialect (`program(1.3)` for ios18,
//!   which M3, M4 and M5 compile), all weights in one blob file, fp16 or fp32 I/O.
//! - An unknown generation (a newer chip, or detection failed) gets the modern profile.

use anekit_mil::program::Opset;
use anekit_mil::text::Dialect;

use super::layout::IoRules;

/// How constant weights are stored for the compiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// Every blob in one file, `@model_path/weights/weight.bin`.
    Single,
    /// One file per weight (`@model_path/weights/w<N>.bin`), its blob at offset 64.
    PerTensor,
}

/// What to emit for one chip generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilProfile {
    /// The Neural Engine generation (`h13`, ...), when known.
    pub generation: Option<String>,
    /// The text dialect; `None`: the dialect of the function's opset.
    pub dialect: Option<Dialect>,
    /// The newest opset the compiler takes; a function of a newer opset is re-tagged to it
    /// when every op exists there, else refused before compiling.
    pub opset_cap: Option<Opset>,
    /// The weight files.
    pub weights: WeightLayout,
    /// Input and output rules.
    pub io: IoRules,
}

/// The generation number of `h13` → 13.
pub fn generation_number(generation: &str) -> Option<u32> {
    generation
        .strip_prefix('h')
        .or_else(|| generation.strip_prefix('H'))?
        .parse()
        .ok()
}

/// The profile for a Neural Engine generation (`None`: unknown).
pub fn profile_for(generation: Option<&str>) -> MilProfile {
    let n = generation.and_then(generation_number);
    match n {
        Some(g @ (13 | 14)) => MilProfile {
            generation: generation.map(str::to_string),
            dialect: Some(Dialect::Legacy),
            opset_cap: Some(Opset::Ios16),
            weights: WeightLayout::PerTensor,
            io: IoRules {
                fp32_io: false,
                ordered_surfaces: g == 13,
            },
        },
        _ => MilProfile {
            generation: generation.map(str::to_string),
            dialect: None,
            opset_cap: None,
            weights: WeightLayout::Single,
            io: IoRules {
                fp32_io: true,
                ordered_surfaces: false,
            },
        },
    }
}

/// The Neural Engine generation of the chip found by `keys` (SoC id, brand string) in
/// anekit-plan's catalog.
pub fn generation_of(keys: &[&str]) -> Option<String> {
    let catalog = anekit_plan::Catalog::builtin();
    keys.iter()
        .find_map(|k| catalog.chip(k))
        .map(|c| c.generation.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m1_and_m2_get_the_legacy_profile() {
        for chip in ["M1", "M1 Max", "M2 Pro", "t8103"] {
            let g = generation_of(&[chip]).unwrap();
            let p = profile_for(Some(&g));
            assert_eq!(p.dialect, Some(Dialect::Legacy), "{chip}");
            assert_eq!(p.opset_cap, Some(Opset::Ios16));
            assert_eq!(p.weights, WeightLayout::PerTensor);
            assert!(!p.io.fp32_io);
        }
        assert!(profile_for(Some("h13")).io.ordered_surfaces);
        assert!(!profile_for(Some("h14")).io.ordered_surfaces);
    }

    #[test]
    fn m3_and_later_and_unknown_chips_get_the_modern_profile() {
        for chip in ["M3", "M4 Max", "M5"] {
            let g = generation_of(&[chip]).unwrap();
            let p = profile_for(Some(&g));
            assert_eq!(p.dialect, None, "{chip}");
            assert_eq!(p.weights, WeightLayout::Single);
            assert!(p.io.fp32_io);
        }
        assert_eq!(profile_for(None).weights, WeightLayout::Single);
        assert_eq!(profile_for(Some("h99")).opset_cap, None);
        assert_eq!(generation_number("h15"), Some(15));
        assert_eq!(generation_number("x15"), None);
        assert_eq!(generation_of(&["Apple Z9"]), None);
    }
}
