"""Data files the tests share."""

from importlib.resources import files
from pathlib import Path

#: The real TESCAN TIMA BSE field (MIT licence), copied from ../shared/data/real into the package.
DEMO_REAL_FIELD = Path(str(files("ml_backend") / "demo" / "real" / "tescan-tima-field1-bse.png"))
