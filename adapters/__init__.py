"""Adapters: implementations of the ports (memory, hybrid, sql)."""
