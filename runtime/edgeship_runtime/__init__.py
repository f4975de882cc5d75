"""edgeship-runtime: run, check and benchmark edgeship artifacts on a board.

Imports nothing from the controller; vendor SDKs are imported inside their backend only.
"""

__version__ = "0.1.0"
