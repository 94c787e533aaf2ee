//! Fuxi's control plane. For now: the `fuxi-ofctl` CLI logic in [`ofctl`].

pub mod ofctl;
