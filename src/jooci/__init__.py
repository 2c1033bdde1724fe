"""jooci: JOOCI (arXiv 2410.11086), two encoders for what is said and how it is said."""

__version__ = "0.1.0"
