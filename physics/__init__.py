"""Physics-prior adapters: heat, wave and Poisson operators on token grids."""
