//! Core ML's compute-unit setting, shared by every crate that places or runs a model.

use serde::{Deserialize, Serialize};

/// Which compute units a model may use (Core ML's `MLComputeUnits`). The one type for the
/// whole workspace: placement prediction in anekit-plan and backend selection in
/// anekit-runtime (both re-export it), Core ML's configuration in anekit-apple, and the
/// command line (`--compute-units`, parsed by [`ComputeUnits::parse`]). It lives in the IR
/// crate because both of those depend on it and not on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComputeUnits {
    /// Any unit.
    #[default]
    All,
    /// CPU and Neural Engine.
    #[serde(alias = "cpu-and-neural-engine")]
    CpuAndNe,
    /// CPU and GPU.
    CpuAndGpu,
    /// CPU only.
    CpuOnly,
}

impl ComputeUnits {
    /// Every setting.
    pub const ALL: [ComputeUnits; 4] = [Self::All, Self::CpuAndNe, Self::CpuAndGpu, Self::CpuOnly];

    /// Whether the Neural Engine may be used.
    pub fn neural_engine(self) -> bool {
        matches!(self, Self::All | Self::CpuAndNe)
    }

    /// Whether the GPU may be used.
    pub fn gpu(self) -> bool {
        matches!(self, Self::All | Self::CpuAndGpu)
    }

    /// The command-line spelling (`cpu-and-ne`).
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::CpuAndNe => "cpu-and-ne",
            Self::CpuAndGpu => "cpu-and-gpu",
            Self::CpuOnly => "cpu-only",
        }
    }

    /// The name as Core ML spells it (`all`, `cpuAndNeuralEngine`, `cpuAndGPU`, `cpuOnly`).
    pub fn coreml_name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::CpuAndNe => "cpuAndNeuralEngine",
            Self::CpuAndGpu => "cpuAndGPU",
            Self::CpuOnly => "cpuOnly",
        }
    }

    /// Core ML's `MLComputeUnits` raw value (`cpuOnly` = 0, `cpuAndGPU` = 1, `all` = 2,
    /// `cpuAndNeuralEngine` = 3; Apple's `MLComputeUnits` documentation).
    pub fn coreml_value(self) -> isize {
        match self {
            Self::CpuOnly => 0,
            Self::CpuAndGpu => 1,
            Self::All => 2,
            Self::CpuAndNe => 3,
        }
    }

    /// Parse the command-line spelling (Core ML's names are accepted too).
    pub fn parse(s: &str) -> Option<Self> {
        let n: String = s
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        Some(match n.as_str() {
            "all" => Self::All,
            "cpuandne" | "cpuandneuralengine" | "cpuandane" => Self::CpuAndNe,
            "cpuandgpu" => Self::CpuAndGpu,
            "cpuonly" | "cpu" => Self::CpuOnly,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ComputeUnits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ComputeUnits {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::parse(s).ok_or_else(|| {
            format!("unknown compute units `{s}` (all, cpu-and-ne, cpu-and-gpu, cpu-only)")
        })
    }
}
