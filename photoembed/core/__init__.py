"""Domain services with no Qt: scanning, ingest, and the jobs the front ends run."""
