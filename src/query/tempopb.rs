//! Tempo-compatible protobuf bodies, generated at build time from `proto/tempo.proto`.
#![allow(missing_docs, clippy::doc_markdown)]

include!(concat!(env!("OUT_DIR"), "/tempopb.rs"));
