"""CardShield toolchain: build, install, personalize and test the CardShield applet.

Import nothing heavy here: `cardshield.setup` runs with the system Python before the
virtual environment (and so pyscard, cryptography, ...) exists.
"""

__version__ = "0.1.0"
