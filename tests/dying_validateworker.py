"""A validation process (``newsletter.lists.validateworker``) that answers its first chunk
and is killed (SIGKILL) in the middle of its second, some of that chunk's verdicts found but
none committed: what the pool meets when a process dies."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from newsletter.lists.addresscache import AddressCache
from newsletter.lists.prevalidate import verdicts
from newsletter.lists.validateworker import store


def main(cache_file: Path) -> None:
    cache = AddressCache(cache_file)
    for count, line in enumerate(sys.stdin):
        chunk = json.loads(line)
        if count == 1:
            half = chunk[: len(chunk) // 2]
            found = zip(half, verdicts(half), strict=True)
            cache.put_many([(raw, form) for raw, (form, _) in found if form], [])  # uncommitted
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdout.write(json.dumps(store(chunk, cache)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
