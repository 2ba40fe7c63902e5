"""`flowyard demo`: the walk-through, end to end, against a running platform."""
