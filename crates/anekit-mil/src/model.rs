//! A whole Core ML model: its protobuf specification with the ML Program as IR.
