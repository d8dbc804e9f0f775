"""jobs/bronze package."""
