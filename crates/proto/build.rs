//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates prost messages and tonic
//! services from the resulting descriptors. The encoded descriptor set is kept for gRPC reflection and for
//! the canonical protobuf JSON mapping.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "hazchem/v1/rules.proto",
        "hazchem/v1/common.proto",
        "hazchem/v1/lifecycle.proto",
        "hazchem/v1/credit.proto",
        "hazchem/v1/enforcement.proto",
        "hazchem/v1/warning.proto",
        "hazchem/v1/audit.proto",
        "hazchem/v1/event.proto",
        "hazchem/v1/publish.proto",
        "hazchem/v1/subscription.proto",
    ];
    // Encode the set from the compiler itself: going through `prost_types` would drop the custom
    // `(hazchem.v1.rules)` options that validation reads at run time.
    let mut compiler = protox::Compiler::new([&root])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(files.iter().map(|f| root.join(f)))?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("hazchem_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let descriptors = compiler.file_descriptor_set();
    // Type names let generic code find a message's descriptor (`prost::Name::full_name`).
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(descriptors, config)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
