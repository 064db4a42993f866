//! The report's human forms, from the [`Report`](super::Report) alone: Markdown, HTML with
//! its SVG charts, JUnit, the terminal summary, and the shared wording ([`format`](mod@format)).
//!
//! Invariant: rendering depends on nothing outside `report/`; a `report.json` re-renders
//! without the runtime (`mcp-loadgen report DIR`).

mod charts;
pub mod deployment;
pub mod format;
pub mod gate;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod summary;
