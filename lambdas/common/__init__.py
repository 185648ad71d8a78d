"""What every handler shares: typed environment, observability, adapters, control logic."""
