"""Retrieval: the nearest rows of a knowledge table to a vector, and the table's vectors made once."""

from engine.retrieval.index import Hit, KnowledgeIndex
from engine.retrieval.knowledge import KnowledgeTable, load_knowledge, open_knowledge

__all__ = ["Hit", "KnowledgeIndex", "KnowledgeTable", "load_knowledge", "open_knowledge"]
