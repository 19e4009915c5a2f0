"""Real-time scoring of registered model versions: ``nbprod serve`` (FastAPI + uvicorn).

loader (registry tags -> verified artifact from the DVC cache), contract (strict request checks),
served (a loaded version and its smoke prediction), swap (hot swap on promotion and rollback),
routing (A/B split, shadow), predlog (JSON-lines prediction log), metrics (Prometheus), app (the
ASGI app), server (uvicorn start-up), settings ([tool.nbprod.serve]), variants (compare from the log).
"""
