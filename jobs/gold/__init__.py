"""jobs/gold package."""
