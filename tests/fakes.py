"""The fake embedder now lives in the package (index/fake.py); tests import it from here too."""
from index.fake import HashEmbedder  # noqa: F401
