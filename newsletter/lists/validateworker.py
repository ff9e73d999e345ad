"""One address validation process of ``prevalidate``: a chunk of addresses a line in (JSON),
their verdicts a line out, until the end of its input."""

from __future__ import annotations

import json
import sys

from .prevalidate import verdicts


def serve() -> None:
    for line in sys.stdin:
        sys.stdout.write(json.dumps(verdicts(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
