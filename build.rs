//! Compiles proto/ with the vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "proto/shardlock/v1/lock.proto",
        "proto/shardlock/v1/admin.proto",
        "proto/shardlock/v1/election.proto",
        "proto/shardlock/v1/errors.proto",
        "proto/ldlm/ldlm.proto",
        "proto/etcd/v3lock.proto",
    ];
    tonic_prost_build::configure().compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
