"""CLIP embeddings through open_clip: the model store, the encoder and the torch runtime set-up.

Nothing here imports torch or open_clip at import time (they cost seconds); the functions that need them
import them.
"""
