#![forbid(unsafe_code)]
//! The pieces of `sherd-image`, the host-side build tool, as a library so that the end-to-end
//! tests read the artifacts with the same code that wrote them.

pub mod cpio;
pub mod elf;
pub mod fat;
pub mod init;
pub mod initramfs;
pub mod iso;
pub mod kernel;
pub mod manifest;
pub mod util;
