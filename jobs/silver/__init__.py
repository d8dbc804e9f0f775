"""jobs/silver package."""
