//! Frontends: other model representations translated into the MIL IR.
//!
//! - [`neuralnetwork`]: Core ML NeuralNetwork models (and pipelines of them).

pub mod neuralnetwork;
