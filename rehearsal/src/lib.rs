#![forbid(unsafe_code)]
//! Rehearsals of the generation ceremony (and a recovery right after it) on an ordinary Linux
//! host: the same screens and the
//! same ceremony core as the image, with in-process virtual OpenPGP cards, the host's own
//! randomness sources, and a folder standing in for the data stick. Every page carries the
//! rehearsal banner. Nothing here is ever part of the image.

pub mod devices;
pub mod kit;
pub mod recovery;

pub use devices::Rehearsal;
