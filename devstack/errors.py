class DevstackError(RuntimeError):
    """Something the local stack needs is missing or failed; the message says what to do."""
