"""jobs/tools package."""
