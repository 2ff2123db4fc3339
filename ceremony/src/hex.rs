//! Lower-case hexadecimal, the one spelling our formats accept (strict, so hashes compare as
//! text). The implementation is the workspace's one, in the `hexstr` crate.

pub use hexstr::*;
