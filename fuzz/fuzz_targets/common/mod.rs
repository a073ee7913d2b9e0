//! Helpers shared by the fuzz targets that read streams.

use std::fmt::Debug;
use std::io::Read;

/// A reader that hands out at most `chunk` bytes per read, to drive streaming parsers through every
/// split of their input.
pub struct Trickle<'a> {
    /// What is left to read.
    pub data: &'a [u8],
    /// The most bytes one read returns.
    pub chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The kind of an error (its variant's name): offsets may differ by where a read stopped, the kind may
/// not.
pub fn kind(e: &impl Debug) -> String {
    let s = format!("{e:?}");
    s.split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}
