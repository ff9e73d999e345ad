"""Issues: drafting from unsent articles, the state machine, pre-send checks."""
