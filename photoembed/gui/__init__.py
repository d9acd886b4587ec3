"""The desktop app: a thin PySide6 layer over photoembed's services.

This package is the only one that imports Qt (import-linter enforces it). Everything slow (SQL, decoding,
the model, FAISS, the trash) runs on :mod:`photoembed.gui.workers` and comes back through queued signals.
"""
