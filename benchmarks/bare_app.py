"""The baseline of the serving benchmark: a bare FastAPI app calling the same model, with no checks,
no metrics, no log. ``BENCH_MODEL`` names the joblib file; it answers what ``nbprod serve`` answers
(predictions, probabilities, classes) so both do the same model work per request.

    BENCH_MODEL=model.joblib python -m uvicorn benchmarks.bare_app:app --port 8001
"""

from __future__ import annotations

import json
import os

import joblib
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response

model = joblib.load(os.environ["BENCH_MODEL"])
app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> Response:
    frame = pd.DataFrame(json.loads(await request.body())["records"])
    answer = {"predictions": model.predict(frame).tolist(), "probabilities": model.predict_proba(frame).tolist(),
              "classes": model.classes_.tolist()}
    return Response(json.dumps(answer), media_type="application/json")
