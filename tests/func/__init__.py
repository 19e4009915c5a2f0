"""Functional tests: real git, DVC, kernels, servers and CLI processes, started and always stopped here."""
