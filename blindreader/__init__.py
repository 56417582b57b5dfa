"""blindreader: blinded reader studies of AI-reconstructed versus conventional MRI.

The distribution holds four packages (``recon_backend``, ``studies``, ``reader_app``,
``analysis``); this small package only wires their command lines together and runs the demo.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("blindreader")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
