"""Linear probes and classification metrics."""
