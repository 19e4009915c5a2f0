"""Make data/warehouse.sqlite, the project's database: scikit-learn's bundled breast cancer data as
table `patients` (an id, six measurements, the diagnosis and a train/holdout split)."""

import sqlite3
from pathlib import Path

from sklearn.datasets import load_breast_cancer

COLUMNS = ["mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness", "worst radius"]


def make(root: Path) -> Path:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame[COLUMNS + ["target"]].copy()
    frame.columns = [c.replace(" ", "_") for c in COLUMNS] + ["diagnosis"]
    frame.insert(0, "id", range(1, len(frame) + 1))
    frame["split"] = ["holdout" if i % 4 == 0 else "train" for i in frame["id"]]
    folder = root / "data"
    folder.mkdir(exist_ok=True)
    (folder / ".gitignore").write_text("# the database is not versioned by git: nbprod snapshots what stages read\n*\n")
    path = folder / "warehouse.sqlite"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as connection:
        frame.to_sql("patients", connection, index=False)
    return path


if __name__ == "__main__":
    print(make(Path(__file__).resolve().parent.parent))
