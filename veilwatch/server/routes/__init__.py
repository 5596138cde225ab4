"""The monitoring room's routes, one module per concern, each a router factory over the services."""
