"""The ``system-info`` source: what is installed on the machine, as text, for rebuilding it.

Items (each can be switched off through ``collect``) and the file each writes:

=================  ======================  ======================================================
packages           ``packages.txt``        ``dpkg --get-selections``
manual-packages    ``manual-packages.txt`` ``apt-mark showmanual``
php-modules        ``php-modules.txt``     ``php -m``
composer-global    ``composer-global.txt`` ``composer global show``
npm-global         ``npm-global.txt``      ``npm ls -g --depth=0``
kernel             ``kernel.txt``          ``uname -a``
os-release         ``os-release``          ``<root>/etc/os-release`` (or ``usr/lib/os-release``)
disks              ``disks.txt``           ``df -hT`` and ``lsblk`` (when present)
services           ``services.txt``        ``systemctl list-units --type=service --state=running``
=================  ======================  ======================================================

``info.json`` records for every item whether it was ``ok``, ``missing`` (tool not installed, file
absent) or ``failed`` (exit status and the end of stderr), plus tool versions. A missing tool is never
a failure, and neither is a failing tool, except for the items in ``required`` (by default the two
package lists): a present ``dpkg``/``apt-mark`` that exits non-zero fails the component, since the
package plan would be silently incomplete.

Restore builds the package install plan: ``apt-get update`` and ``apt-get install -y <manual packages>``
(or, without a manual list, ``dpkg --set-selections`` + ``apt-get dselect-upgrade``), listed in the
report's actions; npm and composer global packages are listed in ``details["follow_up"]``. With
the restore option ``run_install`` true (``restore --install-packages``) (and not a dry run) the apt steps are run; a non-zero exit fails.
Tools are looked up on ``path`` (default: safehold's PATH), which is also how tests substitute fakes.

Modules: :mod:`.source`.
"""

from safehold.sources.system_info.source import ITEMS, SystemInfoOptions, SystemInfoSource

__all__ = ["ITEMS", "SystemInfoOptions", "SystemInfoSource"]
