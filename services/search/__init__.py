"""Search: full-text product search over its own index, fed by the products change feed."""
