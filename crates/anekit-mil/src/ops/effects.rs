//! What an op does besides computing its outputs from its arguments: one table, keyed by
//! registry op names, that constant folding and dead-code elimination everywhere consult (the
//! MIL passes, the compute plan's graph, the CPU backend's plan compiler).

/// An op's effect beyond its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// None: a function of its arguments. It may be folded when they are constants and
    /// removed when its outputs are unused.
    Pure,
    /// Reads a model state: the result depends on earlier predictions, so it is never folded
    /// (it may be removed when unused).
    ReadsState,
    /// Writes a model state: never folded, never removed.
    WritesState,
    /// Draws random numbers: never folded, never removed (coremltools' dead-code pass keeps
    /// them too).
    Random,
}

impl Effect {
    /// Whether an op of this effect with constant arguments may be replaced by its result.
    pub fn foldable(self) -> bool {
        self == Effect::Pure
    }

    /// Whether an op of this effect may be dropped when none of its outputs is used.
    pub fn removable(self) -> bool {
        matches!(self, Effect::Pure | Effect::ReadsState)
    }
}

/// Every registry op whose effect is not [`Effect::Pure`] (a test checks that the names are
/// registry ops and that every op of the `states` and `random` families is listed).
pub const EFFECTS: &[(&str, Effect)] = &[
    ("read_state", Effect::ReadsState),
    ("write_state", Effect::WritesState),
    ("random_bernoulli", Effect::Random),
    ("random_categorical", Effect::Random),
    ("random_normal", Effect::Random),
    ("random_uniform", Effect::Random),
];

/// The effect of `op_type` ([`Effect::Pure`] for every op not in [`EFFECTS`]).
pub fn effect(op_type: &str) -> Effect {
    EFFECTS
        .iter()
        .find(|(op, _)| *op == op_type)
        .map_or(Effect::Pure, |(_, e)| *e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{Family, audit};

    #[test]
    fn effects_name_registry_ops_and_cover_states_and_random_ops() {
        let a = audit(
            "anekit_mil::ops::EFFECTS",
            EFFECTS.iter().map(|(op, _)| *op),
        );
        assert!(a.names_registry_ops(), "{a}");
        for family in [Family::States, Family::Random] {
            for op in family.ops() {
                assert_ne!(effect(op), Effect::Pure, "{op} ({family}) is not pure");
            }
        }
        assert!(effect("relu").foldable() && effect("relu").removable());
        assert!(!effect("write_state").removable() && !effect("read_state").foldable());
    }
}
