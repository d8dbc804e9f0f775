"""Domain data generator: a deterministic retail business and its source systems."""
