"""Intake: read an uploaded interval-data CSV, run every rule, and report every error."""
