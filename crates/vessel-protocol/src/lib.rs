//! vessel-protocol: the contracts between vessel's programs, so each side
//! reads them from one place. `channel` is the agent channel's frame format
//! (VMM <-> guest agent); `launch` is the guest sizing the runtime asks of
//! the VMM and the VMM accepts; `control` is how the runtime pauses and
//! resumes a running VMM and reads that back; `net` is the guest network
//! settings the runtime hands the agent.
//!
//! std only: the guest agent links it into a static binary that is copied
//! into every guest, and the VMM and the runtime link it too.

pub mod channel;
pub mod control;
pub mod launch;
pub mod net;

pub use channel::*;
