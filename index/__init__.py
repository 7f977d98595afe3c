"""policyqa indexing pipeline: read -> parse -> chunk -> embed/tokenize -> dense + lexical index -> search."""

from index import config as _config  # noqa: E402,F401  (first: environment for HF and OpenMP before they load)
