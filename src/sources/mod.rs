//! The sources of change notices. Each turns its notices into change events and hands them to
//! the [`Intake`](crate::intake::Intake); none acknowledges a notice before the intake answered.
//!
//! Today: webhook receivers (`webhook`). Polling and EventBridge join with their issues.

pub mod eventbridge;
pub mod poll;
pub mod providers;
pub mod webhook;
