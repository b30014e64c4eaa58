"""Looking without changing: what differs between snapshots, and whether a configuration can back up.

Glossary:

* :mod:`.diff` — paths added, removed or modified between two snapshots; drift of exported SaaS state.
* :mod:`.doctor` — ``safehold doctor``: every component's preflight, the repository, secrets.
* :mod:`.permissions` — who else may read or change the files safehold trusts.
"""
