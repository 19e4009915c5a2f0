"""The foundation: errors, project paths and settings, processes, git, the DVC cache, the typed stage
run and the one condition syntax. It imports nothing above it."""
