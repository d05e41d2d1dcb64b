"""Multi-host initialisation (placeholder until the scale-out work lands): single process does nothing."""


def initialize_from_env() -> None:
  return None
