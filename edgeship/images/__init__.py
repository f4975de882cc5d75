"""Toolchain images: the Docker engine (engine), the debootstrapped base image (base), pinned and
hashed lock files with their wheelhouses (locks), the Dockerfile rendered from image.toml
(dockerfile, templates/) and the build with its labels and smoke tests (build)."""
