//! Generates the gRPC API (`proto/jotasu/v1/api.proto`, and the data-plane
//! views in `datapath.proto`) with tonic.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/jotasu/v1/api.proto",
            "proto/jotasu/v1/datapath.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
