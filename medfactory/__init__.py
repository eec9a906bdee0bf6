"""medfactory."""
