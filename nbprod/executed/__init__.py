"""Readers of executed notebooks: recorded values, the failing cell, what one stage run was."""
