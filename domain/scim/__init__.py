"""SCIM 2.0 (RFC 7643/7644) in the domain: schemas, filter semantics, JSON mapping, PATCH.

- :mod:`domain.scim.schema`: attribute definitions of User and Group, used for ``/Schemas``
  discovery and for validating filters and PATCH paths;
- :mod:`domain.scim.evaluation`: the filter semantics as predicates over any object
  (shared by the memory adapter and PATCH value filters);
- :mod:`domain.scim.resources`: SCIM JSON to entities and back;
- :mod:`domain.scim.patch`: the PATCH engine (RFC 7644 section 3.5.2).
"""
