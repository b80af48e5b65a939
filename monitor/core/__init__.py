"""Pure values and functions: no I/O, no clock, no logging. Callers pass ``now``."""
