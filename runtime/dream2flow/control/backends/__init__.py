"""control/backends."""
