#![forbid(unsafe_code)]
//! The screens the operator and witnesses see.
//!
//! Everything here renders plain data (view models that cannot hold secrets) into a ratatui
//! frame, and turns key presses into actions. Screens keep to what the Linux console can draw:
//! single-line box drawing, the 16 named colours, and nothing whose meaning rests on colour.

pub mod aloud;
pub mod boot;
pub mod card_check;
pub mod entropy_check;
pub mod entropy_run;
pub mod keys;
pub mod machine;
pub mod notice;
pub mod quote;
pub mod report;
pub mod term;
mod time;

pub use boot::{BootInfo, BuildInfo};
pub mod ceremony;
pub mod recovery;
