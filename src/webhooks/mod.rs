//! Webhooks: signed deliveries of change events to internal consumers.

pub mod outbound;
