"""The ``git`` source: a repository's state as text, optionally with a full bundle of its history.

Files in the component's folder:

* ``head.txt`` — line 1: ``ref: refs/heads/<branch>`` (or ``detached``), line 2: the HEAD commit id
  (empty for an unborn branch);
* ``status.txt`` (``git status --porcelain=v1 --branch``; a note for a bare repository), ``log.txt``
  (the last ``log_limit`` commits of HEAD), ``branches.txt`` and ``tags.txt`` (``<id> TAB <ref>`` lines),
  ``stash.txt`` (``stash@{n} TAB <id> TAB <message>``);
* ``remotes.txt`` — ``<name> TAB <url> TAB (fetch|push)`` lines, credentials removed from every URL
  (:func:`strip_credentials`);
* ``repo.bundle`` (with ``bundle = true``) — ``git bundle create - --all`` streamed from git's stdout.

Restore with a bundle recreates the repository at its path (or below ``ctx.options["target_root"]``):
every ref of the bundle (branches, remote-tracking branches, tags, the newest stash), HEAD on the original
branch, the work tree checked out and the remotes set back (without credentials). It refuses a target
that exists and is not empty. Without a bundle the text files are written to ``<path>.git-state/`` and
the report says the code must be cloned from the remote.

Backups are read-only: git runs with ``GIT_OPTIONAL_LOCKS=0`` (no index refresh) and, because safehold
usually runs as root on a repository owned by the web user, with ``safe.directory`` allowing it.

Modules: :mod:`.options` (settings, restore options), :mod:`.source` (the contract, the backup, the drill's
verification, running git), :mod:`.restore` (plan and apply).
"""

from safehold.sources.git.options import GitOptions
from safehold.sources.git.source import GitSource, strip_credentials

__all__ = ["GitOptions", "GitSource", "strip_credentials"]
