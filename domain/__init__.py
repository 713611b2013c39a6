"""The domain of auth-service: entities, errors and use cases.

Imports nothing but itself, ``ports`` and the standard library (plus msgspec for the
entities). A test enforces this.
"""
