"""policyqa indexing pipeline: read -> parse -> chunk -> embed/tokenize -> dense + lexical index -> search."""
