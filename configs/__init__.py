"""Default configs shipped with nabra (see nabra/paths.py); edit a copy and pass it with --config."""
