//! Fuxi packet parsing, the OpenFlow 1.3 pipeline and the flow caches (no I/O in the core).
