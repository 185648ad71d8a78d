"""A page as a PNG, drawn by headless Chromium (Debian's ``chromium``): what the dashboard tests
look at and how the README's screenshots are made. Each call uses a fresh profile and no
network beyond the page's own address."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from mlops_control.errors import ControlCentreError

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise ControlCentreError("no Chromium: install it (apt-get install -y chromium)")


def screenshot(url: str, target: Path, width: int = 1400, height: int = 2000,
               timeout_s: float = 60.0) -> Path:
    """Render ``url`` in a ``width`` x ``height`` window and save it as ``target`` (PNG)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        completed = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}",
             f"--window-size={width},{height}", f"--screenshot={target}", url],
            capture_output=True, text=True, timeout=timeout_s, check=False)
    if completed.returncode != 0 or not target.is_file():
        raise ControlCentreError(f"Chromium could not render {url}: "
                                 f"{completed.stderr.strip()[-500:]}")
    return target
