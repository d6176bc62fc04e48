//! The one integration-test binary: each `tNN_*.rs` module is one topic.

mod t01_cli;
