//! Test servers and helpers shared by integration tests (see DESIGN.md, "Real parts").

#![allow(dead_code)] // each test binary uses a different part

pub mod apiserver;
pub mod kubectl;
