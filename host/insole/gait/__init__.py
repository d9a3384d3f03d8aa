"""Gait algorithms on the host: reference implementations of what the firmware computes."""
