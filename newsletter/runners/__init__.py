"""Processes that drive the publisher from outside a command: the ``newsletter worker``
loop, and the helper process a large send starts on each further core."""
