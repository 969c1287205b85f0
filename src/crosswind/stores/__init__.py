"""Object and record stores: one contract, one module per backend."""
