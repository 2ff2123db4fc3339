//! An in-process OpenPGP card: Nitrokey's opcard on trussed's virtual (RAM) platform, run on
//! its own thread so the handle is `Send + Sync + 'static`. Test-only: trussed's virtual
//! platform seeds its RNG with a constant.

use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;

use iso7816::command::CommandView;

/// The ATR our virtual cards present: T=0 only, no interface bytes, the ten historical
/// bytes opcard announces (category 00, card capabilities, status 9000).
pub const ATR: [u8; 12] = [
    0x3B, 0x0A, 0x00, 0x31, 0xF5, 0x73, 0xC0, 0x01, 0x60, 0x00, 0x90, 0x00,
];

/// OpenPGP card manufacturer id for test cards (0xFF00..=0xFFFE are reserved for them).
pub const TEST_MANUFACTURER: u16 = 0xFFFE;

enum Request {
    Apdu(Vec<u8>, mpsc::Sender<Vec<u8>>),
    Reset(mpsc::Sender<()>),
}

/// One virtual OpenPGP card. Dropping it stops its thread.
pub struct VirtualCard {
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Option<JoinHandle<()>>,
    serial: u32,
}

mod dispatch {
    //! The trussed backends opcard needs: auth (PINs), staging (chunked I/O, key wrapping)
    //! and the core.
    use trussed::backend::{Backend as _, BackendId};
    use trussed::platform::Platform;
    use trussed::serde_extensions::{ExtensionDispatch, ExtensionId, ExtensionImpl};
    use trussed::service::ServiceResources;
    use trussed::types::Context;
    use trussed_auth::AuthExtension;
    use trussed_auth_backend::{AuthBackend, AuthContext, FilesystemLayout};
    use trussed_chunked::ChunkedExtension;
    use trussed_core::Error;
    use trussed_core::api::{Reply, Request, reply, request};
    use trussed_core::types::Location;
    use trussed_staging::{StagingBackend, StagingContext};
    use trussed_wrap_key_to_file::WrapKeyToFileExtension;

    pub enum Backend {
        Auth,
        Staging,
    }

    pub enum Extension {
        Auth,
        Chunked,
        WrapKeyToFile,
    }

    impl From<Extension> for u8 {
        fn from(e: Extension) -> u8 {
            match e {
                Extension::Auth => 0,
                Extension::Chunked => 1,
                Extension::WrapKeyToFile => 2,
            }
        }
    }

    impl TryFrom<u8> for Extension {
        type Error = Error;
        fn try_from(id: u8) -> Result<Self, Error> {
            match id {
                0 => Ok(Self::Auth),
                1 => Ok(Self::Chunked),
                2 => Ok(Self::WrapKeyToFile),
                _ => Err(Error::InternalError),
            }
        }
    }

    pub const BACKENDS: &[BackendId<Backend>] = &[
        BackendId::Custom(Backend::Auth),
        BackendId::Custom(Backend::Staging),
        BackendId::Core,
    ];

    pub struct Dispatch {
        auth: AuthBackend,
        staging: StagingBackend,
    }

    impl Dispatch {
        pub fn new() -> Self {
            Self {
                auth: AuthBackend::new(Location::Internal, FilesystemLayout::V0),
                staging: StagingBackend::new(),
            }
        }
    }

    #[derive(Default)]
    pub struct DispatchContext {
        auth: AuthContext,
        staging: StagingContext,
    }

    impl ExtensionDispatch for Dispatch {
        type BackendId = Backend;
        type Context = DispatchContext;
        type ExtensionId = Extension;

        fn core_request<P: Platform>(
            &mut self,
            backend: &Backend,
            ctx: &mut Context<DispatchContext>,
            request: &Request,
            resources: &mut ServiceResources<P>,
        ) -> Result<Reply, Error> {
            match backend {
                Backend::Auth => {
                    self.auth
                        .request(&mut ctx.core, &mut ctx.backends.auth, request, resources)
                }
                Backend::Staging => self.staging.request(
                    &mut ctx.core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                ),
            }
        }

        fn extension_request<P: Platform>(
            &mut self,
            backend: &Backend,
            extension: &Extension,
            ctx: &mut Context<DispatchContext>,
            request: &request::SerdeExtension,
            resources: &mut ServiceResources<P>,
        ) -> Result<reply::SerdeExtension, Error> {
            match (backend, extension) {
                (Backend::Auth, Extension::Auth) => self.auth.extension_request_serialized(
                    &mut ctx.core,
                    &mut ctx.backends.auth,
                    request,
                    resources,
                ),
                (Backend::Staging, Extension::Chunked) => {
                    ExtensionImpl::<ChunkedExtension>::extension_request_serialized(
                        &mut self.staging,
                        &mut ctx.core,
                        &mut ctx.backends.staging,
                        request,
                        resources,
                    )
                }
                (Backend::Staging, Extension::WrapKeyToFile) => {
                    ExtensionImpl::<WrapKeyToFileExtension>::extension_request_serialized(
                        &mut self.staging,
                        &mut ctx.core,
                        &mut ctx.backends.staging,
                        request,
                        resources,
                    )
                }
                _ => Err(Error::RequestNotAvailable),
            }
        }
    }

    impl ExtensionId<AuthExtension> for Dispatch {
        type Id = Extension;
        const ID: Extension = Extension::Auth;
    }
    impl ExtensionId<ChunkedExtension> for Dispatch {
        type Id = Extension;
        const ID: Extension = Extension::Chunked;
    }
    impl ExtensionId<WrapKeyToFileExtension> for Dispatch {
        type Id = Extension;
        const ID: Extension = Extension::WrapKeyToFile;
    }
}

/// Largest response opcard produces (its own test harness uses this bound).
const RESPONSE_LEN: usize = 7609;

impl VirtualCard {
    /// A factory-fresh card with this serial number.
    pub fn new(serial: u32) -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name(format!("virtual-card-{serial:08x}"))
            .spawn(move || {
                trussed::virt::with_platform(trussed::virt::StoreConfig::ram(), |platform| {
                    platform.run_client_with_backends(
                        "opcard",
                        dispatch::Dispatch::new(),
                        dispatch::BACKENDS,
                        |client| {
                            let mut options = opcard::Options::default();
                            options.manufacturer = TEST_MANUFACTURER.to_be_bytes();
                            options.serial = serial.to_be_bytes();
                            options.button_available = false;
                            let mut card = opcard::Card::new(client, options);
                            let mut reply = heapless::Vec::<u8, RESPONSE_LEN>::new();
                            while let Ok(req) = rx.recv() {
                                match req {
                                    Request::Apdu(apdu, answer) => {
                                        reply.clear();
                                        let status = match CommandView::try_from(apdu.as_slice()) {
                                            Ok(cmd) => card
                                                .handle(cmd, reply.as_mut_view())
                                                .err()
                                                .unwrap_or_default(),
                                            Err(_) => {
                                                reply.clear();
                                                iso7816::Status::WrongLength
                                            }
                                        };
                                        let sw: [u8; 2] = status.into();
                                        let mut out = reply.to_vec();
                                        out.extend_from_slice(&sw);
                                        let _ = answer.send(out);
                                    }
                                    Request::Reset(done) => {
                                        card.reset();
                                        let _ = done.send(());
                                    }
                                }
                            }
                        },
                    )
                })
            })
            .expect("spawning the virtual card thread");
        Self {
            requests: Mutex::new(Some(tx)),
            thread: Some(thread),
            serial,
        }
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    fn send(&self, req: Request) {
        let guard = self.requests.lock().expect("virtual card lock");
        guard
            .as_ref()
            .expect("virtual card stopped")
            .send(req)
            .expect("virtual card thread died");
    }

    /// Send one command APDU (short or extended), get data + SW1 SW2.
    pub fn transmit(&self, apdu: &[u8]) -> Vec<u8> {
        let (tx, rx) = mpsc::channel();
        self.send(Request::Apdu(apdu.to_vec(), tx));
        rx.recv().expect("virtual card thread died")
    }

    /// A power cycle: PIN verifications and the selected application are forgotten, the
    /// stored keys and PINs stay.
    pub fn reset(&self) {
        let (tx, rx) = mpsc::channel();
        self.send(Request::Reset(tx));
        rx.recv().expect("virtual card thread died");
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        if let Ok(mut g) = self.requests.lock() {
            g.take();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
