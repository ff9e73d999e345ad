"""Real local servers for tests: each binds 127.0.0.1 on a port the OS picks."""
