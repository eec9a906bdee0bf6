class RewardError(ValueError):
    """A mistake the user can fix: a bad answer key, verifier or reward model."""
