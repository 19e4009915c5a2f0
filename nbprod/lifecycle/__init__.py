"""Model lifecycle: retraining candidates behind validation gates, a GTO-format registry on git tags,
approvals, rollback, history, lineage, environment capture and reproducible bundles."""
