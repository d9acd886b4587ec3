"""photoembed: private, offline CLIP search and duplicate finding for personal photo collections."""

__version__ = "0.1.0"
