"""The simulation: random networks propagated layer by layer (engine), their keyed random
streams, the probes, and the backends that run the few loops that need speed."""
