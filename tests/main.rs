//! The one integration-test binary: each `tNN_*.rs` module is one topic,
//! and `harness` starts real nodes on loopback.

mod checker;
mod corpus;
mod fault_log;
mod harness;
mod links;
mod proxy;
mod raw;
mod t01_cli;
mod t02_cluster;
mod t03_surfaces;
mod t04_ldlm;
mod t05_ops;
mod t06_tls;
mod t07_membership;
mod t08_faults;
mod t09_bad_input;
mod t10_upgrade;
mod t11_readme;
mod workload;
