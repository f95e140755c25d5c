"""The model repository: what is on disk (layout), what is served (manager),
and how several workers agree in explicit mode (control)."""

from app.repository.layout import Entry, Source, choose_default, scan
from app.repository.manager import Repository

__all__ = ["Entry", "Repository", "Source", "choose_default", "scan"]
