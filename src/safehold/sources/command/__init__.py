"""The ``command`` source: the standard output of any program, stored as one file.

Backup runs ``command`` and streams its stdout into ``filename`` in the component's folder (no copy on
disk). It fails closed: a non-zero exit, a timeout (the whole process group is killed), or an empty
output when ``allow_empty`` is false raises :class:`~safehold.errors.SourceError`, with the tail of the
program's stderr in the backup log and the message.

Restore pipes the stored file into ``restore_command``'s stdin and fails on its non-zero exit, on a
timeout, and when the program stops reading before the end of the file. With
``ctx.options["target_root"]`` (or without a ``restore_command``, where it is then required) the file
itself is written below that folder instead, atomically, mode 0600.

``command`` is an argv list, run without a shell (no quoting surprises, no injection). A single string is
accepted only together with ``shell = true`` and is then run by ``/bin/sh -c``. Environment additions
(``env``) may be plain strings or secret references; secret values are resolved at run time, are never
written into metadata, and are masked in any program output that reaches the log. Variable names must be
names (``[A-Za-z_][A-Za-z0-9_]*``) and no value may hold NUL, the one character an environment cannot
carry (:mod:`safehold.syntax`).

Modules: :mod:`.source`.
"""

from safehold.sources.command.source import CommandOptions, CommandSource

__all__ = ["CommandOptions", "CommandSource"]
