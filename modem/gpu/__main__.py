# SPDX-License-Identifier: Apache-2.0
"""``python -m modem.gpu``: compile every CUDA kernel on the current device (warm-up before timing)
and print where the sources came from; exits 2 with one line where the GPU backend cannot run."""
from __future__ import annotations

import sys
import time

from ..errors import ModemError


def main() -> int:
    try:
        from .loader import compile_all, kernel_dir  # noqa: PLC0415
        t0 = time.perf_counter()
        names = compile_all()
    except ModemError as exc:
        print(f"modem.gpu: error: {exc}", file=sys.stderr)
        return 2
    print(f"compiled {len(names)} kernel files from {kernel_dir()} in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
