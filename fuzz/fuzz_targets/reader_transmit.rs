//! A hostile USB reader: whatever it sends on bulk-in and interrupt-in, power-on, slot
//! status and APDU exchange end without panic, within the data it sends.
#![no_main]

use std::time::Duration;

use cards::ccid::ClassDescriptor;
use cards::reader::{Reader, Timeouts, Transport};
use cards::{Error, Result};
use libfuzzer_sys::fuzz_target;

struct Hostile {
    chunks: std::vec::IntoIter<Vec<u8>>,
}

impl Transport for Hostile {
    fn bulk_out(&mut self, _: &[u8], _: Duration) -> Result<()> {
        Ok(())
    }
    fn bulk_in(&mut self, max_len: usize, after: Duration) -> Result<Vec<u8>> {
        match self.chunks.next() {
            Some(mut c) => {
                c.truncate(max_len);
                Ok(c)
            }
            None => Err(Error::Timeout {
                what: "bulk-in",
                after,
            }),
        }
    }
    fn interrupt_in(&mut self, _: Duration) -> Result<Option<Vec<u8>>> {
        Ok(self.chunks.next())
    }
}

fn descriptor(features: u32, max: u32) -> Option<ClassDescriptor> {
    let mut d = vec![0x36, 0x21, 0x10, 0x01, 0x00, 0x07];
    d.extend_from_slice(&3u32.to_le_bytes());
    d.extend_from_slice(&[0; 30]);
    d.extend_from_slice(&features.to_le_bytes());
    d.extend_from_slice(&max.to_le_bytes());
    d.extend_from_slice(&[0xFF, 0xFF, 0, 0, 0, 1]);
    ClassDescriptor::parse(&d).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let features = [0x0001_0000, 0x0002_0000, 0x0004_0000][usize::from(sel % 3)];
    let max = 15 + u32::from(sel >> 2) * 8;
    let Some(desc) = descriptor(features, max) else {
        return;
    };
    let mut chunks = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        chunks.push(tail[..n].to_vec());
        rest = &tail[n..];
    }
    let Ok(mut reader) = Reader::new(
        Hostile {
            chunks: chunks.into_iter(),
        },
        desc,
        0,
    ) else {
        return;
    };
    reader.set_timeouts(Timeouts {
        transfer: Duration::from_millis(1),
        command: Duration::from_secs(2),
        max_stale: 8,
    });
    let _ = reader.slot_status();
    if reader.power_on().is_ok() {
        let _ = reader.transmit(&[
            0x00, 0xA4, 0x04, 0x00, 0x06, 0xD2, 0x76, 0x00, 0x01, 0x24, 0x01, 0x00,
        ]);
        let _ = reader.transmit(&[0x00, 0xCA, 0x00, 0x6E, 0x00]);
    }
    let _ = reader.wait_slot_change(Duration::ZERO);
});
