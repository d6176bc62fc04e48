//! The one integration-test binary: each `tNN_*.rs` module is one topic,
//! and `fixtures` holds what they share (nodes on loopback, raw wire
//! access, fault proxies).

mod fixtures;
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
mod t12_placement;
mod t13_wait_answers;
mod t14_resp;
mod t15_modes;
mod t16_watch;
mod t17_election;
