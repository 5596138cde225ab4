"""The monitoring room's routes, one module per concern; each route takes its services from `deps.py`."""
