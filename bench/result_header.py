"""What every benchmark's result file starts with: its name, the date, and the machine it
ran on (with the load average it ran under: the machine is shared)."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from dplb import __version__


def result_header(benchmark: str) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "dplb": __version__,
            "load_average": os.getloadavg(),
        },
    }
