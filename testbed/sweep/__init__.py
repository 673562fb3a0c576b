"""`testbed sweep`: capacity searches across landscapes, the scaling model, the recommendation."""
