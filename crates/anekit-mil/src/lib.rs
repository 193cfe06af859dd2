//! The MIL IR: Core ML's ML Program representation, used by every part of anekit for
//! reading, analysis, compression, execution, writing and the MIL text that the ANE
//! compiler takes.
//!
//! - [`types`]: data types, dimensions (incl. flexible), tensor/list/tuple/dict/state types.
//! - [`value`]: constants — immediates and memory-mapped weights.
//! - [`program`]: Program → Function → Block → Operation, opsets.
//! - [`proto`]: lossless conversion from and to the MIL protobuf.
//! - [`model`]: a whole model (specification + program): open, save.
//! - [`frontend`]: NeuralNetwork models (and pipelines of them) translated into MIL.
//! - [`text`]: the `model.mil` text form.
//! - [`ops`]: the op registry (opsets iOS15..iOS18, parameters, type inference).
//! - [`validate`]: program validation against the registry.

#![forbid(unsafe_code)]

pub mod compute_units;
pub mod error;
pub mod frontend;
pub mod model;
pub mod ops;
pub mod passes;
pub mod program;
pub mod proto;
pub mod summary;
pub mod text;
pub mod types;
pub mod validate;
pub mod value;

pub use compute_units::ComputeUnits;
pub use error::{MilError, Result};
pub use program::{Argument, Binding, Block, Function, Operation, Opset, Program};
pub use types::{DataType, Dim, NamedValueType, TensorType, ValueType};
pub use value::{BlobRef, Placement, Storage, TensorData, Value, ValueData};
