"""Validation of the gait algorithms against reference data: metrics, datasets, the table."""
