"""The retraining job's two kinds of failure, shared by its parts (training/retrain.py and what it uses)."""

class RetrainError(Exception):
    """Bad input or a store/stream state the job cannot use; the message says what and how to fix it."""


class RetrainUnavailable(Exception):
    """Nothing wrong with the input, but not now: Redis unreachable, or another retrain holds the store."""
