"""User-facing errors: the CLI prints these as one clear message and exits 2."""


class SteerhealError(Exception):
    """An error the user can fix (bad input, missing file, unavailable model)."""


class ConfigError(SteerhealError):
    """A config file, field or override is invalid."""


class ModelLoadError(SteerhealError):
    """A model spec could not be resolved or loaded."""
