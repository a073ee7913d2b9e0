//! Test support shared by the workspace's integration tests, on the standard library alone:
//!
//! - [`nats::NatsServer`]: a `nats-server` process on a free loopback port, or a skipped test when the
//!   binary is missing (a failure with `TOUCHTONE_REQUIRE_NATS=1`);
//! - [`http`]: raw HTTP/1.1 requests and responses, so tests see exactly what went over the wire;
//! - [`serve::ServeProcess`]: `touchtone serve` (or the command given) as a child process, its address
//!   read from its first line on stderr.

#![warn(missing_docs)]

pub mod http;
pub mod nats;
pub mod serve;
