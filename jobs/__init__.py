"""The lakehouse jobs package (shipped to EMR Serverless)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lakehouse")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0.0.0+source"
