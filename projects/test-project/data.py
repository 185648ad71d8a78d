"""Training data for test-project: breast cancer diagnosis (scikit-learn's bundled copy).

``get_data()`` follows the control centre's model contract: no arguments, returns ``(X, y)``.

- By default it returns the data set that ships inside scikit-learn (no download).
- When ``MLOPS_DATA_LOCATION`` names a CSV or Parquet file, or a folder of them (a local path
  or an ``s3://`` URI; in a SageMaker training job the control centre points it at the
  training channel), it trains on those files instead. They hold the same feature columns and
  a ``target`` column.
- With ``TEST_ENV=True`` it returns a small, fixed test slice.
"""

from __future__ import annotations

import os
import re

import pandas as pd

TARGET = "target"
TEST_SLICE_ROWS = 40
DATA_SUFFIXES = (".csv", ".parquet", ".pq")


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def bundled() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    return frame.rename(columns=_snake)


def _read_one(fs, path: str) -> pd.DataFrame:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with fs.open_input_file(path) as handle:
        if path.endswith(".csv"):
            return pacsv.read_csv(handle).to_pandas()
        return pq.read_table(handle).to_pandas()


def from_location(location: str) -> pd.DataFrame:
    """Every CSV/Parquet file at ``location`` (a file or a folder, local or S3), in name order."""
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(location) if "://" in location else (
        pafs.LocalFileSystem(), os.path.abspath(location))
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no training data at {location}")
    if info.type == pafs.FileType.File:
        files = [path]
    else:
        selector = pafs.FileSelector(path, recursive=True)
        files = sorted(f.path for f in fs.get_file_info(selector)
                       if f.type == pafs.FileType.File and f.path.endswith(DATA_SUFFIXES))
        if not files:
            raise FileNotFoundError(f"no .csv or .parquet files under {location}")
    frames = [_read_one(fs, f) for f in files]
    frame = pd.concat(frames, ignore_index=True)
    if TARGET not in frame.columns:
        raise ValueError(f"training data at {location} has no {TARGET!r} column")
    return frame


def get_data():
    location = os.environ.get("MLOPS_DATA_LOCATION")
    frame = from_location(location) if location else bundled()
    if os.environ.get("TEST_ENV", "").lower() == "true":
        frame = frame.head(TEST_SLICE_ROWS)
    X = frame.drop(columns=[TARGET]).astype("float64")
    y = frame[TARGET].astype("int64")
    return X, y
