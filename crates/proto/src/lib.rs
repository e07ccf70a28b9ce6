//! The `hazchem.v1` contract in Rust: every message, the gRPC clients and servers, and the descriptor set.
//!
//! This is the only crate that compiles `proto/`. Generated types stop at each service's gRPC layer, where
//! they are converted into domain types.

/// Generated modules, nested as the protobuf packages are so that cross-package paths resolve.
pub mod hazchem {
    /// `hazchem.v1`: events, lifecycle records, credit, enforcement, warnings, audit, publish and subscribe.
    pub mod v1 {
        #![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]
        tonic::include_proto!("hazchem.v1");
    }
}

/// Generated `google.rpc` types.
pub mod google {
    /// `google.rpc.Status`, carried in batch publish results.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

mod convert;
mod reflect;
pub mod time;

pub use convert::{UnknownDepartment, department_from_i32};
pub use hazchem::v1;
pub use reflect::*;

/// The encoded `FileDescriptorSet` of the whole contract (for gRPC reflection and JSON mapping).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hazchem_descriptor.bin"));
