"""neurontui: the observer. Reads telemetry and the workload's events; never imports torch."""

__version__ = "0.1.0"
