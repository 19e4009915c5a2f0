"""Outcomes meet predictions: the outcome store beside nbprod serve's prediction log (store), the join
(join), live quality per version and variant with the A/B verdict (quality, live), the rollback policy."""
