//! The op registry: every op of the iOS15..iOS18 opsets with its parameters and type inference.
