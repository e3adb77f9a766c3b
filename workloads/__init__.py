"""workloads: the measured side. Imports torch; never imports textual."""
