"""Online learning inside the lifecycle: ``nbprod learn`` updates the production model on its labelled
feedback (test-then-train) and registers the result as a candidate version, approved by policy or by a human."""
