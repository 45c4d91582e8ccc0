"""Data files shipped with biohicl (see NOTICE.md)."""
