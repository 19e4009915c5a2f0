"""Exports of the pipeline to other engines (Airflow). Each reads the compiled pipeline; none runs it."""
