"""Services (Redis, ...) resolved for tests: from the environment, Docker, or local binaries."""
