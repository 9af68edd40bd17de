"""customer360: the unified customer profile."""
