"""The names of the files in an index folder."""
MANIFEST, DOCUMENTS, CHUNKS, VECTORS, DENSE, BM25_DIR = (
    "manifest.json", "documents.jsonl", "chunks.jsonl", "vectors.npy", "dense.faiss", "bm25")
ADAPTER = "query_adapter.npz"
RELEVANCE = "relevance"  # the relevance stage's folder (index/relevance.py)
