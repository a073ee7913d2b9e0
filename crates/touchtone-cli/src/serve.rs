//! `touchtone serve`: placeholder until the server lands.

use crate::Failure;

/// Arguments of `touchtone serve`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `touchtone serve`.
pub fn run(_args: Args) -> Result<(), Failure> {
    Err(Failure::input("serve is not built yet"))
}
