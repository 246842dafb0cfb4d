"""The parts of the testing kit; the public names are in :mod:`quiv.testing`."""
