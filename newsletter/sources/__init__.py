"""Sources of articles: feeds (RSS, Atom, JSON Feed) and folders of Markdown files."""

from .base import FetchResult, FetchState, Source, SourceSpec, make_source

__all__ = ["FetchResult", "FetchState", "Source", "SourceSpec", "make_source"]
