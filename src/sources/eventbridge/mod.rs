//! The EventBridge source: change events read from the SQS queue an EventBridge rule targets.

pub mod consumer;
pub use switchyard_core::envelope;
