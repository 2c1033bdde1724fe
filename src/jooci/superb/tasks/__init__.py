"""The SUPERB-style tasks: each owns its head, its loss and its metric (see :mod:`.common`)."""
