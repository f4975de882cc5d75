"""edgeship: convert one model for many edge accelerators, in per-target toolchain images."""

__version__ = "0.1.0"
