//! Core AI models: the `aicode` dialect on top of [`anekit_mlir`], and the translation
//! between Core AI graphs and the MIL IR.
//!
//! - [`ir`]: the dialect's attributes and types (decode, encode).
//! - [`schema`]: which properties each op carries.
//! - [`text`]: the textual form, as coreai-core's MLIR prints it.
//! - [`float`]: MLIR's float printing.

pub mod coverage;
pub mod float;
pub mod fold;
pub mod from_mil;
pub mod ir;
pub mod konst;
pub mod model;
pub mod open;
pub mod reencode;
pub mod schema;
pub mod text;
pub mod to_mil;

pub use open::{CoreAiModel, OpenError};
