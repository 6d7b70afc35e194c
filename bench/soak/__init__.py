"""`python -m bench.soak`: a chaos soak of the whole pipeline, with the invariants checked
from the outside and the table written to docs/reliability.md."""
