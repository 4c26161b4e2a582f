"""Backends: the few primitives of the engine that need speed (numpy always, compiled optional)."""
