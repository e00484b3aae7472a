"""One module per paper (and baseline); each holds only what its paper adds."""
