"""A validation process (``newsletter.lists.validateworker``) whose verdicts reach the cache
only after the read is over (here, never): what a read meets while a real one holds them
for its next transaction, made certain rather than left to timing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from newsletter.lists.addresscache import AddressCache
from newsletter.lists.validateworker import store


class _Unstored(AddressCache):
    def put_many(self, accepted: list[tuple[str, str]], refused: list[tuple[str, str]]) -> None:
        pass


def main(cache_file: Path) -> None:
    cache = _Unstored(cache_file)
    for line in sys.stdin:
        sys.stdout.write(json.dumps(store(json.loads(line), cache)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
