//! Pure domain types and decisions: no IO, no async, no runtime state beyond plain maps.

pub mod capabilities;
pub mod catalog;
pub mod invalidation;
pub mod keys;
pub mod model;
pub mod router;
pub mod secrets;
pub mod seed;
pub mod template;
