"""Kubernetes as the execution engine: each run a Job in the operator's cluster."""
