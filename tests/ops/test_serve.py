"""``rapport serve``: how it starts and refuses to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_an_invalid_configuration_is_refused_with_its_reason_and_status_3() -> None:
    env = {**os.environ, "RAPPORT_ENVIRONMENT": "production", "ORDERS_PORT": "1"}
    env.pop("RAPPORT_INTERNAL_TOKEN_SECRET", None)
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "serve", "orders"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert "rapport serve orders: invalid configuration" in done.stderr
    assert "RAPPORT_INTERNAL_TOKEN_SECRET must be set" in done.stderr
    assert "Traceback" not in done.stderr
