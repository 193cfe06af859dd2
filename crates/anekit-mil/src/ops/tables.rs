//! Per-op tables of other crates, audited against the registry.
//!
//! The registry is the key for every per-op fact in anekit. The crates that do something
//! with an op keep what they know as tables keyed by registry op names: the compute plan's
//! Neural Engine support and cost classes (`anekit_plan::rules`, `anekit_plan::cost`), the
//! fp16 conversion's behaviour ([`crate::passes::fp16`]), the CPU backend's kernel
//! registrations (`anekit_runtime::cpu::kernels`) and the MPSGraph vocabulary
//! (`anekit_apple::gpu_graph`). Each of them runs [`audit`] in a test, which fails for a
//! registry op its table does not classify and for a table entry that names no registry op,
//! so a new op cannot be silently defaulted (for example, predicted to run on the Neural
//! Engine at the default cost because a placement table forgot it).

use std::collections::BTreeMap;
use std::fmt;

use super::registry;

/// How a table keyed by op names matches the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The table's name, for messages (`anekit_plan::rules::OP_SUPPORT`).
    pub table: String,
    /// Keys that are not registry op names.
    pub unknown: Vec<String>,
    /// Keys that appear more than once.
    pub duplicates: Vec<String>,
    /// Registry ops the table has no entry for.
    pub missing: Vec<&'static str>,
}

impl Audit {
    /// Every registry op has exactly one entry and every entry names a registry op.
    pub fn is_complete(&self) -> bool {
        self.names_registry_ops() && self.missing.is_empty()
    }

    /// Every entry names a registry op, once (the table may leave ops out).
    pub fn names_registry_ops(&self) -> bool {
        self.unknown.is_empty() && self.duplicates.is_empty()
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.table)?;
        if self.is_complete() {
            return f.write_str(" classifies every registry op once");
        }
        if !self.unknown.is_empty() {
            write!(
                f,
                " {} entr{} name{} no registry op ({});",
                self.unknown.len(),
                if self.unknown.len() == 1 { "y" } else { "ies" },
                if self.unknown.len() == 1 { "s" } else { "" },
                self.unknown.join(", ")
            )?;
        }
        if !self.duplicates.is_empty() {
            write!(f, " listed twice: {};", self.duplicates.join(", "))?;
        }
        if !self.missing.is_empty() {
            write!(
                f,
                " {} registry op{} not classified ({})",
                self.missing.len(),
                if self.missing.len() == 1 { "" } else { "s" },
                self.missing.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Compare the keys of the per-op table `table` with the registry's op names.
pub fn audit<'a>(table: &str, keys: impl IntoIterator<Item = &'a str>) -> Audit {
    let reg = registry();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for k in keys {
        *seen.entry(k).or_default() += 1;
    }
    Audit {
        table: table.to_string(),
        unknown: seen
            .keys()
            .filter(|k| !reg.contains(k))
            .map(|k| (*k).to_string())
            .collect(),
        duplicates: seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| (*k).to_string())
            .collect(),
        missing: reg
            .iter()
            .map(|(name, _)| name)
            .filter(|name| !seen.contains_key(name))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_names_what_is_wrong() {
        let all: Vec<&str> = registry().iter().map(|(n, _)| n).collect();
        assert!(audit("all", all.iter().copied()).is_complete());
        let mut keys: Vec<&str> = all.iter().copied().filter(|n| *n != "relu").collect();
        keys.push("frobnicate");
        keys.push("add");
        let a = audit("t", keys);
        assert_eq!(a.unknown, ["frobnicate"]);
        assert_eq!(a.duplicates, ["add"]);
        assert_eq!(a.missing, ["relu"]);
        assert!(!a.is_complete() && !a.names_registry_ops());
        let text = a.to_string();
        for s in ["frobnicate", "listed twice: add", "relu"] {
            assert!(text.contains(s), "{text}");
        }
    }
}
