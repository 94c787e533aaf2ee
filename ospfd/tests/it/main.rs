//! The one integration-test binary of fuxi-ospfd: fixtures, scenarios, simulation, SPF,
//! and interop with real FRR and BIRD.

mod converge;
mod fixtures;
mod interop;
mod scenarios;
mod sim;
mod simtests;
mod spf;
