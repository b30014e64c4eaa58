"""The ``system`` source: configuration of the services an application server runs on.

Collectors and their default paths (glob patterns relative to ``root``; an empty list disables one):

==============  ==================================================================================
nginx           ``etc/nginx``
php_fpm         ``etc/php/*/fpm``
supervisor      ``etc/supervisor``
cron            ``var/spool/cron/crontabs/*`` (every user that has one), ``etc/crontab``, ``etc/cron.*``
redis           ``etc/redis``
systemd         ``etc/systemd/system``
letsencrypt     ``etc/letsencrypt/{live,archive,renewal,accounts,renewal-hooks}``
==============  ==================================================================================

``extra`` adds collectors of your own (``{"php_cli": ["etc/php/*/cli"]}``). ``accounts`` is collected
besides ``live``/``archive``/``renewal`` because certbot cannot renew without the ACME account key.

Layout in the component's folder: every match goes in under ``<collector>/<path relative to root>``.
A directory is stored with ``out.add_tree`` (the engine keeps modes, owners and symlinks, so
``live/`` keeps pointing into ``archive/``); a single file (a user's crontab) with ``out.add_stream``,
its mode, owner (uid and name), mtime and parent folder's metadata recorded in ``manifest.json``;
a top-level symlink is recorded in the manifest only. A pattern that matches nothing is recorded as
missing, not a failure; an unreadable match fails the component (fail closed).

Restore recreates every item below the original root or the restore option ``target_root`` (only the
collectors named in the restore option ``collectors`` when that list is given). Dry run lists
each file that would be created or overwritten. Single files get their mode, owner (by name when that
user exists on this machine, else by uid) and mtime back; owners need root, otherwise a warning says
they were not restored. The report's ``details["next_steps"]`` names the reloads the services need.
Nothing is written by path: every folder from the target root down to an item is opened one name at a
time (``engine.fs.safedir.open_folder``; root's own symlinks are followed, another user's symlink or a
file where a folder goes is refused, or with ``--force`` replaced, and the plan warns of it), and single
files and symlinks are created under a new name in that folder, given their owner, mode and time through
their descriptor, then renamed into place.

Modules: :mod:`.options` (collectors, restore options), :mod:`.source` (the contract, the backup),
:mod:`.restore` (plan and apply), :mod:`.restored` and :mod:`.nginx` (drills' checks of what was restored).
"""

from safehold.sources.system.options import BUILTIN, SystemOptions
from safehold.sources.system.source import SystemSource

__all__ = ["BUILTIN", "SystemOptions", "SystemSource"]
