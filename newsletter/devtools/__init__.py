"""Tools for development, demos and tests: never used by a real send."""
