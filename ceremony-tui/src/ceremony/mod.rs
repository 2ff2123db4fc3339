//! The witnessed generation ceremony: one page per step, driven by the ceremony core's flow.

pub mod driver;
pub mod intent;
pub mod page;
pub mod policy;
pub mod screens;
pub mod script;

pub use driver::{CardPoll, Console, Devices, Gathered, Outcome, PlanPoll, run};
pub use page::Page;
