//! Program validation: SSA, known ops, parameters, and output types re-inferred by the op registry.
