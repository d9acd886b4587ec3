"""Persistence: the SQLite catalog (the source of truth) and the FAISS index derived from it."""
