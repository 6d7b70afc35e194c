"""`python -m bench.scale`: the cost of a send as campaigns, instances and history grow."""
