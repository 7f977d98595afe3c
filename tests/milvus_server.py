"""The milvus-lite test server; it lives in eval/milvus_lite.py, which the backend benchmark starts too."""
from eval.milvus_lite import MilvusLite, free_port, milvus_lite_binary  # noqa: F401
