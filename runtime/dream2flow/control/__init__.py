"""Control: the deterministic fixed-rate loop, safety layer, interpolation and robot backends."""
