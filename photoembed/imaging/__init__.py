"""Photo files: which names are photos (:mod:`.formats`), decoding (:mod:`.decode`), EXIF (:mod:`.metadata`).

Nothing is imported here, so that importing one module of the package does not load the others.
"""
