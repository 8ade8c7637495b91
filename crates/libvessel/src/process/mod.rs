//! Creating the container's processes: the plan prepared before clone, the
//! init that runs after it, and the parent/child sync protocol.
pub mod child;
pub mod maps;
pub mod plan;
pub mod sealed_exe;
pub mod spawn;
pub mod sync;
