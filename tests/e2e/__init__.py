"""End-to-end tests: the real node in network namespaces (DESIGN section 10, level 4)."""
