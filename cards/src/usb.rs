//! The usbfs transport: nusb (pure Rust, no libusb) with every transfer bounded in time.

use std::time::Duration;

use nusb::transfer::{Buffer, Bulk, In, Interrupt, Out, TransferError};
use nusb::{Endpoint, MaybeFuture};

use crate::ccid::{ClassDescriptor, is_class_descriptor};
use crate::discovery::ReaderInfo;
use crate::error::{Error, Result};
use crate::reader::{Reader, Transport};

/// How long a cancelled transfer may take to come back before the endpoint counts as stuck.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// Bulk and interrupt endpoints of one claimed CCID interface.
pub struct UsbTransport {
    bulk_out: Endpoint<Bulk, Out>,
    bulk_in: Endpoint<Bulk, In>,
    irq: Option<Endpoint<Interrupt, In>>,
    /// Set when a cancelled transfer never came back: the device is unusable until replugged.
    stuck: bool,
    // Keeps the interface claimed while the endpoints live.
    _interface: nusb::Interface,
}

fn usb_error(e: TransferError) -> Error {
    match e {
        TransferError::Disconnected => Error::Disconnected,
        other => Error::Usb(other.to_string()),
    }
}

impl UsbTransport {
    fn check_usable(&self) -> Result<()> {
        if self.stuck {
            return Err(Error::Usb(
                "an earlier transfer never completed after cancellation; replug the reader".into(),
            ));
        }
        Ok(())
    }
}

/// Wait for the one pending transfer; on timeout cancel it and reap it within a grace period.
fn reap<E: nusb::transfer::BulkOrInterrupt, D: nusb::transfer::EndpointDirection>(
    ep: &mut Endpoint<E, D>,
    timeout: Duration,
    stuck: &mut bool,
    what: &'static str,
) -> Result<nusb::transfer::Completion> {
    if let Some(c) = ep.wait_next_complete(timeout) {
        return Ok(c);
    }
    ep.cancel_all();
    match ep.wait_next_complete(CANCEL_GRACE) {
        // A reader that ends a message on a packet boundary without the zero-length packet
        // leaves the transfer open: what arrived before the cancel is the message.
        Some(c) if c.actual_len > 0 && c.status == Err(TransferError::Cancelled) => {
            return Ok(nusb::transfer::Completion {
                status: Ok(()),
                ..c
            });
        }
        Some(_) => {}
        None => *stuck = true,
    }
    Err(Error::Timeout {
        what,
        after: timeout,
    })
}

impl Transport for UsbTransport {
    fn bulk_out(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        self.check_usable()?;
        self.bulk_out.submit(Buffer::from(data.to_vec()));
        let c = reap(&mut self.bulk_out, timeout, &mut self.stuck, "bulk-out")?;
        let (status, actual_len) = (c.status, c.actual_len);
        // The transfer buffer held the message (maybe a PIN): wipe it.
        zeroize::Zeroize::zeroize(&mut c.buffer.into_vec());
        status.map_err(usb_error)?;
        if actual_len != data.len() {
            return Err(Error::Usb(format!(
                "only {} of {} bytes were sent",
                actual_len,
                data.len()
            )));
        }
        // A message filling whole packets ends with a zero-length packet; without it QEMU's
        // usb-ccid keeps waiting for the rest of a 64-byte message.
        if data
            .len()
            .is_multiple_of(self.bulk_out.max_packet_size().max(1))
        {
            self.bulk_out.submit(Buffer::new(0));
            reap(&mut self.bulk_out, timeout, &mut self.stuck, "bulk-out")?
                .status
                .map_err(usb_error)?;
        }
        Ok(())
    }

    fn bulk_in(&mut self, max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        self.check_usable()?;
        let mps = self.bulk_in.max_packet_size().max(1);
        // usbfs wants whole packets; the reader ends a message with a short packet.
        let len = max_len.div_ceil(mps).max(1) * mps;
        self.bulk_in.submit(Buffer::new(len));
        let c = reap(&mut self.bulk_in, timeout, &mut self.stuck, "bulk-in")?;
        if c.status == Err(TransferError::Stall) {
            let _ = self.bulk_in.clear_halt().wait();
        }
        let buf = c.into_result().map_err(usb_error)?;
        Ok(buf.into_vec())
    }

    fn interrupt_in(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        self.check_usable()?;
        let Some(irq) = self.irq.as_mut() else {
            return Ok(None);
        };
        // Keep one transfer queued between calls so no notification is missed.
        if irq.pending() == 0 {
            let mps = irq.max_packet_size().max(1);
            irq.submit(Buffer::new(mps));
        }
        match irq.wait_next_complete(timeout) {
            None => Ok(None),
            Some(c) => Ok(Some(c.into_result().map_err(usb_error)?.into_vec())),
        }
    }
}

/// Open a reader found by [`crate::discovery`], claim its CCID interface and read its class
/// descriptor.
pub fn open(info: &ReaderInfo) -> Result<Reader<UsbTransport>> {
    let dev_info = nusb::list_devices()
        .wait()
        .map_err(|e| Error::Usb(format!("listing USB devices: {e}")))?
        .find(|d| d.busnum() == info.busnum && d.device_address() == info.devnum)
        .ok_or(Error::Disconnected)?;
    let device = dev_info
        .open()
        .wait()
        .map_err(|e| Error::Usb(format!("opening {}: {e}", info.name())))?;
    let config = device
        .active_configuration()
        .map_err(|e| Error::Usb(format!("reading the configuration of {}: {e}", info.name())))?;
    let alt = config
        .interface_alt_settings()
        .find(|a| a.interface_number() == info.interface && a.alternate_setting() == 0)
        .ok_or_else(|| {
            Error::Descriptor(format!(
                "interface {} is not in the configuration",
                info.interface
            ))
        })?;
    // After the interface descriptor, or (some pre-standard readers) after the endpoints.
    let class = alt
        .descriptors()
        .find(|d| is_class_descriptor(d.as_bytes()))
        .ok_or_else(|| Error::Descriptor("the interface has no CCID class descriptor".into()))?;
    let desc = ClassDescriptor::parse(class.as_bytes())?;
    let mut bulk_in = None;
    let mut bulk_out = None;
    let mut irq = None;
    for ep in alt.endpoints() {
        use nusb::descriptors::TransferType;
        match (ep.transfer_type(), ep.address() & 0x80 != 0) {
            (TransferType::Bulk, true) => bulk_in = Some(ep.address()),
            (TransferType::Bulk, false) => bulk_out = Some(ep.address()),
            (TransferType::Interrupt, true) => irq = Some(ep.address()),
            _ => {}
        }
    }
    let (Some(bulk_in), Some(bulk_out)) = (bulk_in, bulk_out) else {
        return Err(Error::Descriptor(
            "the CCID interface lacks a bulk-in or bulk-out endpoint".into(),
        ));
    };
    let interface = device
        .detach_and_claim_interface(info.interface)
        .wait()
        .map_err(|e| Error::Usb(format!("claiming interface {}: {e}", info.interface)))?;
    let ep_err = |e: nusb::Error| Error::Usb(format!("opening an endpoint: {e}"));
    let transport = UsbTransport {
        bulk_out: interface.endpoint::<Bulk, Out>(bulk_out).map_err(ep_err)?,
        bulk_in: interface.endpoint::<Bulk, In>(bulk_in).map_err(ep_err)?,
        irq: match irq {
            Some(a) => Some(interface.endpoint::<Interrupt, In>(a).map_err(ep_err)?),
            None => None,
        },
        stuck: false,
        _interface: interface,
    };
    Reader::new(transport, desc, 0)
}
