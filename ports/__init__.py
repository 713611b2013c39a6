"""Ports: the Protocols the domain depends on and the adapters implement."""
