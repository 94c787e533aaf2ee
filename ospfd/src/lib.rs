//! OSPFv2 for Fuxi: a sans-IO protocol core and the `fuxi-ospfd` daemon around it.
