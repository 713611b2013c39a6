"""HTTP, CLI, settings and the dependency-injection container."""
