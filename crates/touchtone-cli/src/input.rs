//! Opening an input file, or standard input for `-`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::Failure;

/// An opened input: the reader, its size in bytes when known (0 for stdin), and its name for messages.
pub struct Input {
    /// The bytes.
    pub reader: Box<dyn Read>,
    /// The size, for progress (0 when unknown).
    pub size: u64,
    /// How to name it in messages.
    pub name: String,
}

/// Opens `path`, or standard input when it is `-`.
pub fn open(path: &Path) -> Result<Input, Failure> {
    let name = path.display().to_string();
    if name == "-" {
        return Ok(Input {
            reader: Box::new(std::io::stdin().lock()),
            size: 0,
            name,
        });
    }
    let f = File::open(path).map_err(|e| Failure::input(format!("{name}: {e}")))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Input {
        reader: Box::new(f),
        size,
        name,
    })
}
