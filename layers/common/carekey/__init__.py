"""CareKey: the domain core shared by every auth function (the Lambda layer)."""

__version__ = "1.0.0"
