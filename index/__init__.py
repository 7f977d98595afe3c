"""policyqa indexing pipeline: read -> parse -> chunk -> embed/tokenize -> dense + lexical index -> search.

Importing it changes nothing in the process: entry points call ``index.config.offline_environment()``.
"""
