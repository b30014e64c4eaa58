"""The ``files`` source: file trees with all their metadata.

Each configured path is stored below the component's folder under its absolute path without the leading
slash (``/var/www/app`` -> ``<component>/var/www/app``), so that several paths fit in one component and a
restore knows where each goes. Restore puts every stored path back under ``target_root`` (default ``/``).

Modules: :mod:`.source`, :mod:`.export` (its layout in ``safehold export``).
"""

from safehold.sources.files.source import FilesOptions, FilesSource

__all__ = ["FilesOptions", "FilesSource"]
