"""Hall IT tools: simulation, benchmarks, the demo, and the hcp command line."""
